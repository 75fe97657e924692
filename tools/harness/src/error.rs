//! The error type of nines-harness. Every variant that wraps another error
//! keeps it as its source; the messages name the file (suite, ledger,
//! drive) and, for a user's mistake, the field and the fix.

use std::path::PathBuf;

use nines_datasets::DatasetError;
use nines_offboard::OffboardError;
use nines_onboard::OnboardError;
use nines_sim::SimError;

/// Result with [`HarnessError`].
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// What can stop an eval, a report or a gate.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A suite file that cannot be used: names the file, the field and the fix.
    #[error("{path}: {detail}")]
    Suite {
        /// The suite file.
        path: PathBuf,
        /// Field, problem and fix.
        detail: String,
    },
    /// A ledger that cannot be used as asked (not a ledger, another schema,
    /// a release name taken by another model): names the file and the fix.
    #[error("{path}: {detail}")]
    Ledger {
        /// The ledger file.
        path: PathBuf,
        /// Problem and fix.
        detail: String,
    },
    /// SQLite refused a ledger operation.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The operating system refused a read or write.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A value that cannot be used as given (a seed range, a shard), with the fix.
    #[error("{0}")]
    Invalid(String),
    /// The simulator (unknown family, a drive it could not write).
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The runtime (model, config, ONNX Runtime) under test.
    #[error(transparent)]
    Onboard(#[from] OnboardError),
    /// Distilling an open-loop drive's lidar labels.
    #[error(transparent)]
    Offboard(#[from] OffboardError),
    /// Reading a drive.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A suite that is not valid TOML (the parser names the line and the field).
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// JSON that does not parse (a release's stored contract) or cannot be written.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The eval's worker threads could not start.
    #[error("starting the eval's worker threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
    /// The report's chart could not be drawn.
    #[error("drawing the chart: {0}")]
    Chart(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Some runs of an eval could not run; the others are recorded.
    #[error(
        "{} of {total} runs could not run (the other runs are recorded in {}; run the same command again to retry): {}",
        failed.len(),
        ledger.display(),
        failed.join("; ")
    )]
    RunsFailed {
        /// Each run that could not run, with why.
        failed: Vec<String>,
        /// Runs this eval attempted.
        total: usize,
        /// Where the others are.
        ledger: PathBuf,
    },
    /// Another error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        /// What was being done (names the file or run).
        context: String,
        /// The error.
        #[source]
        source: Box<HarnessError>,
    },
}

impl HarnessError {
    /// A value that cannot be used as given.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::Invalid(detail.into())
    }

    /// This error with what was being done when it happened.
    #[must_use]
    pub fn context(self, context: impl Into<String>) -> Self {
        Self::Context { context: context.into(), source: Box::new(self) }
    }
}

/// Adds what was being done to an error on its way up.
pub trait Context<T> {
    /// With a fixed context.
    fn context(self, context: &str) -> Result<T>;
    /// With a context made only when there is an error.
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<HarnessError>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: &str) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}
