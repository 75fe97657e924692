//! The error type of nines-datasets: every variant names the file (or topic)
//! and, for user mistakes, the field and the fix.

use std::path::PathBuf;

/// Result with [`DatasetError`].
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

/// Everything that can go wrong reading, writing or importing drives.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The operating system refused a read or write.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an MCAP file at all.
    #[error("{path}: not an MCAP drive log (at byte offset 0: {detail})")]
    NotMcap {
        /// File concerned.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The file is MCAP but damaged at a known place.
    #[error("{path}: corrupt at byte offset {offset}: {detail}")]
    Corrupt {
        /// File concerned.
        path: PathBuf,
        /// Byte offset of the damaged record (or the point reading stopped).
        offset: u64,
        /// What was wrong, and what to do.
        detail: String,
    },
    /// The file has no summary section, so it cannot be read by index.
    #[error(
        "{path}: no summary section before the end at byte offset {file_len} (the recording \
         was cut off, or its end is damaged); run `nines recover {path} fixed.mcap` to keep \
         every complete message"
    )]
    Unfinished {
        /// File concerned.
        path: PathBuf,
        /// File size, where the summary was expected to end.
        file_len: u64,
    },
    /// Writing through the MCAP library failed.
    #[error("{path}: writing MCAP: {source}")]
    McapWrite {
        /// File concerned.
        path: PathBuf,
        /// Library error.
        #[source]
        source: mcap::McapError,
    },
    /// A message payload could not be encoded or decoded as CDR.
    #[error("{context}: CDR: {detail}")]
    Cdr {
        /// Topic, type and time of the message.
        context: String,
        /// What the CDR codec said.
        detail: String,
    },
    /// A message type the caller asked for is not the type on the topic.
    #[error(
        "{path}: topic {topic} carries {found}, not {expected} (message in the chunk at byte offset {offset})"
    )]
    WrongType {
        /// File concerned.
        path: PathBuf,
        /// Where the message or channel was found (0 if unknown).
        offset: u64,
        /// Topic concerned.
        topic: String,
        /// Type in the file.
        found: String,
        /// Type asked for.
        expected: String,
    },
    /// A schema name that nines has no `.msg` definition for.
    #[error("no message definition for {0} (known types are in datasets/msg)")]
    UnknownType(String),
    /// User-provided data (a dataset file, a calibration, a message field) is
    /// wrong; the message says which field and how to fix it.
    #[error("{path}: field `{field}`: {problem}")]
    Invalid {
        /// File (or topic) concerned.
        path: PathBuf,
        /// Field that is wrong.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

impl DatasetError {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A user-data problem naming file, field and fix.
    pub fn invalid(path: impl Into<PathBuf>, field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid { path: path.into(), field: field.into(), problem: problem.into() }
    }
}
