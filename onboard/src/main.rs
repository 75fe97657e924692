//! `nines-onboard`: the runtime on the robot.
//!
//! `nines-onboard --config configs/vehicle-sim.toml --source drive.mcap --model model.onnx --record out.mcap`
//!
//! On a robot it is also its own installer: `nines-onboard install`,
//! `verify`, `status` and `self-test` (see docs/FLASH.md). The arguments
//! and what they do live in the library's `cli` module.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    nines_onboard::exit_quietly_on_closed_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = nines_onboard::cli::Cli::parse();
    match nines_onboard::cli::run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
