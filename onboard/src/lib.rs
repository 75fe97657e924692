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
//! no simulator. OpenCV sources sit behind the default-on `opencv` feature.

pub mod config;
pub mod controller;
pub mod inference;
pub mod ort_env;
pub mod pipeline;
pub mod preprocess;
pub mod recorder;
pub mod release;
pub mod rmw;
pub mod runtime;
pub mod safety;
pub mod source;
#[cfg(feature = "zenoh")]
pub mod zenoh_io;

use std::path::PathBuf;

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
    /// The zenoh network: a session, a declaration or a message.
    #[error("zenoh: {0}")]
    Network(String),
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
