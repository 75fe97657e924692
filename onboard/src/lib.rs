//! nines-onboard: the runtime that drives the robot (DESIGN.md section 4).
//!
//! [`pipeline::Pipeline::step`] is the whole decision for one moment:
//! newest camera frame -> warp and normalise into the model's virtual camera
//! ([`preprocess`]) -> frame stack -> ONNX Runtime ([`inference`]) ->
//! [`controller`] -> [`safety`] monitor -> an `AckermannDrive`. The threaded
//! [`runtime`] (capture thread, newest-frame slot, control thread, publisher
//! and [`recorder`] thread) and the nines harness's lockstep closed loop call
//! the same `step`.
//!
//! Lean by design (it is cross-compiled for the robot): no burn, no rerun,
//! no simulator. OpenCV sources, zenoh I/O, release management and the
//! command line sit behind default-on features (`opencv`, `zenoh`,
//! `release`, `cli`), so training and the harness embed the runtime without
//! them. [`replay`] is the one lockstep replay of a drive through the runtime.

#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod controller;
pub mod inference;
pub mod obstacle;
pub mod ort_env;
pub mod pipeline;
pub mod preprocess;
pub mod recorder;
#[cfg(feature = "release")]
pub mod release;
pub mod replay;
pub mod rmw;
pub mod runtime;
pub mod safety;
pub mod source;
#[cfg(feature = "zenoh")]
pub mod zenoh_io;

/// Makes a closed standard output (`nines report --json | head -1`) end the
/// process with status 0 and nothing on stderr, as Unix tools do. Rust
/// ignores SIGPIPE, so `println!` into a closed pipe panics with "failed
/// printing to stdout: Broken pipe"; this hook turns exactly that panic
/// into a quiet exit and leaves every other panic to the default hook.
/// Call first thing in `main`.
pub fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

use std::path::PathBuf;

impl OnboardError {
    /// A release problem (bundle, key, install root): `path` and what is wrong, with the fix.
    pub fn release(path: &std::path::Path, detail: impl Into<String>) -> Self {
        Self::Release { path: path.to_path_buf(), detail: detail.into() }
    }

    /// Maps an I/O error on `path` while doing `what`.
    pub fn io(path: &std::path::Path, what: &str) -> impl FnOnce(std::io::Error) -> Self + use<> {
        let (path, what) = (path.to_path_buf(), what.to_owned());
        move |source| Self::Io { path, what, source }
    }
}

/// Result with [`OnboardError`].
pub type Result<T, E = OnboardError> = std::result::Result<T, E>;

/// What can stop the runtime from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum OnboardError {
    /// The configuration file is wrong: names the file, the key and the fix.
    #[error("{path}: {detail}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Key, problem and fix.
        detail: String,
    },
    /// The model cannot run on this vehicle.
    #[error("{path}: {detail}")]
    Model {
        /// The ONNX file.
        path: PathBuf,
        /// What does not fit, and the fix.
        detail: String,
    },
    /// ONNX Runtime could not be loaded or refused a request.
    #[error("{0}")]
    Runtime(String),
    /// A frame source failed to open or read.
    #[error("source {source_name}: {detail}")]
    Source {
        /// The source as given.
        source_name: String,
        /// What went wrong.
        detail: String,
    },
    /// The source's publisher left (the process ended or its link closed):
    /// the normal end of a networked run, and also how a lost camera looks.
    /// The runtime stops the car either way; it is logged as information.
    #[error("source {source_name}: {detail}")]
    SourceGone {
        /// The source as given.
        source_name: String,
        /// Who left.
        detail: String,
    },
    /// The zenoh network: a session, a declaration or a message.
    #[error("zenoh: {context}: {source}")]
    Network {
        /// What was being done (names the key or the config entry).
        context: String,
        /// What zenoh (or the config check) said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// ONNX Runtime failed a request on a loaded model.
    #[error("{context}: {source}")]
    Ort {
        /// What was being done.
        context: String,
        /// What ONNX Runtime said.
        #[source]
        source: ort::Error,
    },
    /// A thread of the runtime could not start.
    #[error("starting the {name} thread: {source}")]
    Thread {
        /// The thread's name.
        name: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The operating system refused a read or write.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A release bundle, key or install root: names the file and the fix.
    #[error("{path}: {detail}")]
    Release {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong, and the fix.
        detail: String,
    },
    /// Reading or writing a drive.
    #[error(transparent)]
    Dataset(#[from] nines_datasets::DatasetError),
    /// A kernel refused its inputs.
    #[error(transparent)]
    Kernel(#[from] nines_kernels::KernelError),
}
