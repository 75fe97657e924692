//! nines-tools: the `nines` CLI for people at a workstation. Each subcommand
//! lives in `commands/` and is a thin layer over the library crates; this
//! crate may depend on every other nines crate, none may depend on it.

use std::fmt::Write as _;

mod commands;
#[cfg(feature = "viewer")]
pub mod replay;

use clap::{Parser, Subcommand};

pub use commands::bench::BenchArgs;
/// What `nines bundle` reads from a runtime binary: its architecture and
/// glibc floor, and the shared libraries it needs.
pub use commands::bundle::{check_elf, needed_libraries};

/// Train with lidar, drive with cameras, count the nines.
#[derive(Debug, Parser)]
#[command(
    name = "nines",
    version,
    about = "Train with lidar, drive with cameras, count the nines. `nines demo` runs the main job end to end; \
             `nines <command> --help` explains each command below.",
    long_about = None
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import a public dataset into a drive log (MCAP).
    #[command(subcommand)]
    Import(commands::import::ImportCommand),
    /// Summarise a drive: topics, types, counts, rates, gaps, calibration, sync.
    Inspect(commands::inspect::InspectArgs),
    /// Rewrite a drive cut mid-write (or damaged), keeping every complete message.
    Recover(commands::recover::RecoverArgs),
    /// Look at a drive in the rerun viewer (or save it as .rrd, or serve the web viewer).
    #[cfg(feature = "viewer")]
    Replay(commands::replay::ReplayArgs),
    /// Distil drives into labels (depth, lead, path) for the camera-only network.
    #[command(long_about = commands::distill::LONG_ABOUT)]
    Distill(commands::distill::DistillArgs),
    /// Train the camera-only network on labels (burn; CPU, or GPU with the `gpu` feature).
    #[command(long_about = commands::train::LONG_ABOUT)]
    Train(commands::train::TrainArgs),
    /// Export a trained run to ONNX, checked against ONNX Runtime.
    #[command(long_about = commands::export::LONG_ABOUT)]
    Export(commands::export::ExportArgs),
    /// Measure performance (results go in docs/PERFORMANCE.md).
    #[command(subcommand)]
    Bench(BenchArgs),
    /// Simulate drives: scenario families, the expert, camera and lidar.
    #[command(subcommand)]
    Sim(commands::sim::SimCommand),
    /// Collect recovery data: a model drives, a safety driver takes over before failures (HG-DAgger).
    #[command(long_about = commands::collect::LONG_ABOUT)]
    Collect(commands::collect::CollectArgs),
    /// The data engine: rounds of collect, distil, train, export, eval and gate.
    #[command(long_about = commands::engine::LONG_ABOUT)]
    Engine(commands::engine::EngineArgs),
    /// Evaluate a model (or the expert) on a suite into the ledger; `eval merge` joins shards.
    #[command(long_about = commands::eval::LONG_ABOUT)]
    Eval(commands::eval::EvalArgs),
    /// Report the nines per release and family from the ledger (text, --json, --html).
    Report(commands::eval::ReportArgs),
    /// Fail (non-zero exit) when a candidate release is significantly worse than its baseline.
    Gate(commands::eval::GateArgs),
    /// Ledger housekeeping: `nines ledger rm --release NAME` removes a release and its runs.
    #[command(subcommand)]
    Ledger(commands::eval::LedgerCommand),
    /// Write a test fleet's CA, node certificates (mutual TLS on zenoh) and
    /// the access-control policy that lets only the runtime publish commands.
    Certs(commands::certs::CertsArgs),
    /// The robot's zenoh network as ROS 2 sees it, with no ROS install:
    /// `list` the nodes and topics, `echo` a topic's messages.
    #[cfg(feature = "network")]
    #[command(subcommand)]
    Net(commands::net::NetCommand),
    /// Write a fleet signing key pair: PREFIX.key (secret) and PREFIX.pub.
    Keygen(commands::bundle::KeygenArgs),
    /// Build a signed release bundle of the onboard runtime for a robot:
    /// runtime, ONNX Runtime, model, config, systemd unit, manifest.
    Bundle(commands::bundle::BundleArgs),
    /// Install a bundle on a robot over ssh (or into a local folder): verify
    /// on the target, switch atomically, health-check, roll back.
    Flash(commands::flash::FlashArgs),
    /// The main job end to end: simulate, distil, train, export, eval, report.
    #[command(long_about = commands::demo::LONG_ABOUT)]
    Demo(commands::demo::DemoArgs),
}

/// An error that ends the command with a chosen exit status (`nines
/// recover`: 3 when some data was lost, 4 when none was readable), after
/// `message` (if any) on stderr.
#[derive(Debug)]
pub struct Exit {
    /// The exit status.
    pub code: u8,
    /// What to say on stderr; empty when the command already said it.
    pub message: String,
}

impl Exit {
    /// An exit with `code` and `message`.
    #[must_use]
    pub fn new(code: u8, message: String) -> Self {
        Self { code, message }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (exit status {})", self.message, self.code)
    }
}

impl std::error::Error for Exit {}

/// The cargo features this `nines` was built with, and the commands a
/// slim build leaves out (`nines --version` shows both).
#[must_use]
pub fn build_features() -> String {
    let features: Vec<&str> = [
        ("cuda", cfg!(feature = "cuda")),
        ("opencv", cfg!(feature = "opencv")),
        ("viewer", cfg!(feature = "viewer")),
        ("network", cfg!(feature = "network")),
        ("gpu", cfg!(feature = "gpu")),
        ("torch", cfg!(feature = "torch")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let mut left_out = Vec::new();
    if !cfg!(feature = "viewer") {
        left_out.push("replay, bench replay (feature `viewer`)");
    }
    if !cfg!(feature = "network") {
        left_out.push("net, sim serve, bench zenoh, zenoh sources (feature `network`)");
    }
    let mut text = format!(
        "{}\nfeatures: {}\nGPU training backends: {}",
        env!("CARGO_PKG_VERSION"),
        features.join(", "),
        nines_offboard::training::gpu_backends()
    );
    if !left_out.is_empty() {
        let _ = write!(text, "\nleft out of this build: {}", left_out.join("; "));
    }
    text
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Import(cmd) => commands::import::run(cmd),
        Command::Inspect(args) => commands::inspect::run(&args),
        Command::Recover(args) => commands::recover::run(&args),
        #[cfg(feature = "viewer")]
        Command::Replay(args) => commands::replay::run(&args),
        Command::Distill(args) => commands::distill::run(&args),
        Command::Train(args) => commands::train::run(&args),
        Command::Collect(args) => commands::collect::run(&args),
        Command::Engine(mut args) => {
            // Paths it prints (the report, the ledger, the model) work from any folder.
            args.out = std::path::absolute(&args.out)?;
            commands::engine::run(&args)
        }
        Command::Export(args) => commands::export::run(&args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Sim(cmd) => commands::sim::run(cmd),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Report(args) => commands::eval::run_report(&args),
        Command::Gate(args) => commands::eval::run_gate(&args),
        Command::Ledger(cmd) => commands::eval::run_ledger(&cmd),
        Command::Demo(mut args) => {
            args.out = std::path::absolute(&args.out)?;
            commands::demo::run(&args)
        }
        Command::Certs(args) => commands::certs::certs(&args),
        #[cfg(feature = "network")]
        Command::Net(cmd) => commands::net::run(&cmd),
        Command::Keygen(args) => commands::bundle::keygen(&args),
        Command::Bundle(args) => commands::bundle::bundle(&args),
        Command::Flash(args) => commands::flash::flash(&args),
    }
}
