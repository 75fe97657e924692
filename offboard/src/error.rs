//! The error type of nines-offboard: every variant names the drive or file.

use std::path::PathBuf;

use nines_datasets::DatasetError;
use nines_kernels::KernelError;

/// Result with [`OffboardError`].
pub type Result<T, E = OffboardError> = std::result::Result<T, E>;

/// What can go wrong distilling labels.
#[derive(Debug, thiserror::Error)]
pub enum OffboardError {
    /// Reading the drive failed (the inner error names the file).
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A kernel failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The drive lacks something distillation needs.
    #[error("{drive}: {what}; {fix}")]
    Missing {
        /// The drive.
        drive: PathBuf,
        /// What is missing.
        what: String,
        /// How to get labels anyway.
        fix: String,
    },
    /// A label file or index could not be read or written.
    #[error("{path}: {detail}")]
    Labels {
        /// The file.
        path: PathBuf,
        /// What went wrong, and what to do.
        detail: String,
    },
    /// A training configuration that cannot be used (names the key and the fix).
    #[error("{0}")]
    Config(String),
    /// A training run's folder or files (names the file and the fix).
    #[error("{path}: {detail}")]
    Run {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong, and what to do.
        detail: String,
    },
    /// Training, evaluation or export failed in the tensor library or in ONNX Runtime.
    #[error("{0}")]
    Model(String),
    /// The operating system refused a read or write.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The onboard runtime's ONNX Runtime session (export's parity check).
    #[error("{context}: {source}")]
    Runtime {
        /// What was being done.
        context: String,
        /// The runtime's error.
        #[source]
        source: Box<nines_onboard::OnboardError>,
    },
}

impl OffboardError {
    /// A run-folder problem.
    pub fn run(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::Run { path: path.into(), detail: detail.into() }
    }

    /// A label-file problem.
    pub fn labels(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::Labels { path: path.into(), detail: detail.into() }
    }

    /// Maps an I/O error on `path` while doing `what`.
    pub fn io(path: impl Into<PathBuf>, what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, what, source }
    }

    /// Something the drive lacks.
    pub fn missing(drive: impl Into<PathBuf>, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Missing { drive: drive.into(), what: what.into(), fix: fix.into() }
    }
}
