//! The `nines-onboard` command line (feature `cli`): its arguments, and the
//! two things it does: run the runtime ([`drive`]) or manage releases on
//! the robot ([`release`]). [`main`] parses, sets up logging and maps the
//! result to an exit code; it is the `nines-onboard` binary's whole `main`,
//! and the `nines` binary calls it when it is invoked as `nines-onboard`.

mod drive;
mod release;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Camera frames in, the camera-only network through ONNX Runtime, control
/// commands out, behind a safety monitor; records its own drive.
///
/// Recorded sources (MCAP drives, video files) run in lockstep: every frame,
/// as fast as possible, on the source's clock, so a replay is reproducible.
/// `--realtime` plays them at the recorded rate; cameras are always live.
/// Type `engage` on stdin, or put a `std_msgs/msg/Empty` on /nines/engage
/// over zenoh, to ask for re-engagement after a controlled stop.
///
/// Under systemd (Type=notify) it reports READY once the first command is
/// out and pings the watchdog while commands keep coming.
#[derive(Debug, Parser)]
#[command(
    name = "nines-onboard",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Tool>,
    #[command(flatten)]
    run: Args,
}

/// Release management on the robot.
#[derive(Debug, Subcommand)]
pub(crate) enum Tool {
    /// Checks a bundle's signature and every file against its manifest, and
    /// prints what it holds. Changes nothing.
    Verify {
        /// The bundle (`nines bundle` wrote it).
        bundle: PathBuf,
        /// The fleet public key to trust (`nines keygen` wrote it).
        #[arg(long)]
        pubkey: PathBuf,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What is installed: the current release, whether its files are intact,
    /// the other releases, the last install event. Exits 1 when the current
    /// release is missing or changed.
    Status {
        /// The install root.
        #[arg(long, default_value = "/opt/nines")]
        root: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verifies a bundle with the key this robot trusts, unpacks it into
    /// releases/<id>, switches `current` atomically, checks its health and
    /// rolls back when it is unhealthy. Prints the report as one JSON line.
    /// Exits 2 when the release was rolled back (or, on a first install,
    /// not installed).
    Install {
        /// The bundle.
        bundle: PathBuf,
        /// The install root.
        #[arg(long, default_value = "/opt/nines")]
        root: PathBuf,
        /// The key to trust instead of <root>/keys/fleet.pub.
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// `systemd`: restart the release's unit and watch it (READY, then
        /// no watchdog restart); `none`: run the release's self-test instead.
        #[arg(long, default_value = "systemd", value_parser = ["systemd", "none"])]
        service: String,
        /// Command that runs the release's binary for the self-test, e.g.
        /// an emulator when preparing another architecture's SD card.
        #[arg(long)]
        runner: Option<String>,
        /// Releases to keep (the current and previous are always kept).
        #[arg(long, default_value_t = 3)]
        keep: usize,
        /// Seconds the release has to prove healthy.
        #[arg(long, default_value_t = 30.0)]
        health_timeout: f64,
    },
    /// Loads the model with the vehicle config and runs one inference: the
    /// health check of a release on a robot without systemd.
    SelfTest {
        /// Vehicle configuration.
        #[arg(long)]
        config: PathBuf,
        /// The ONNX model.
        #[arg(long)]
        model: PathBuf,
    },
}

/// Running the runtime.
#[derive(Debug, clap::Args)]
#[expect(clippy::struct_excessive_bools, reason = "command-line switches")]
pub(crate) struct Args {
    /// Vehicle configuration (TOML), e.g. configs/vehicle-sim.toml.
    #[arg(long, required = true)]
    pub(crate) config: Option<PathBuf>,
    /// Frame source, overriding camera.source: a .mcap drive, a video file,
    /// /dev/videoN or v4l2:N, gst:<pipeline ending in appsink>, or `zenoh`
    /// (camera.topic and zenoh.odometry_topic on the robot's network, as
    /// ROS 2 publishes them with rmw_zenoh; `[zenoh]` says how to join).
    #[arg(long)]
    pub(crate) source: Option<String>,
    /// ONNX model written by `nines export`, overriding model.path.
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Record the runtime's drive here (recording.mode decides what).
    #[arg(long)]
    pub(crate) record: Option<PathBuf>,
    /// Play a recorded source at its recorded rate instead of lockstep.
    #[arg(long)]
    pub(crate) realtime: bool,
    /// With `--source zenoh`: step once per message on the publisher's
    /// clock (for `nines sim serve` in lockstep). Without it the control
    /// loop runs on the wall clock at the control rate, so a stalled camera
    /// trips the frame-age check.
    #[arg(long)]
    pub(crate) lockstep: bool,
    /// Publish on zenoh ([zenoh]) even when replaying a drive or a video
    /// file. By default only a zenoh or live camera source publishes, so a
    /// replay on a robot never sends recorded decisions to its actuators.
    #[arg(long)]
    pub(crate) publish: bool,
    /// Print every command as a line of JSON on stdout.
    #[arg(long)]
    pub(crate) print: bool,
}

/// The `nines-onboard` command: arguments from the process, logs on stderr
/// (INFO by default, `RUST_LOG` to change; colour only on a terminal).
#[must_use]
pub fn main() -> ExitCode {
    crate::exit_quietly_on_closed_pipe();
    init_logging("info");
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs on stderr at `default_filter` (`RUST_LOG` overrides it), with
/// colour codes only on a terminal: logs and pipes get plain text. The
/// `nines` binary logs the same way.
pub fn init_logging(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs what the command line asks for; the exit code on success (release
/// tools use 1 and 2 for unhealthy and rolled back).
pub fn run(cli: &Cli) -> crate::Result<ExitCode> {
    match &cli.command {
        Some(tool) => release::run(tool),
        None => drive::run(&cli.run).map(|()| ExitCode::SUCCESS),
    }
}
