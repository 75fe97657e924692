//! `nines-onboard`: the runtime on the robot.
//!
//! `nines-onboard --config configs/vehicle-sim.toml --source drive.mcap --model model.onnx --record out.mcap`
//!
//! On a robot it is also its own installer: `nines-onboard install`,
//! `verify`, `status` and `self-test` (see docs/FLASH.md). The arguments
//! and what they do live in the library's `cli` module.

fn main() -> std::process::ExitCode {
    nines_onboard::cli::main()
}
