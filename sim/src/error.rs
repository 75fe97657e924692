//! Errors of nines-sim.

/// Result with [`SimError`].
pub type Result<T, E = SimError> = std::result::Result<T, E>;

/// What can go wrong setting up or recording a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A scenario family file does not parse.
    #[error("{file}: {detail}")]
    Scenario {
        /// File.
        file: String,
        /// What the TOML parser said (names the field and line).
        detail: String,
    },
    /// No family of that name.
    #[error("no scenario family `{name}`; known families: {known}")]
    UnknownFamily {
        /// Asked for.
        name: String,
        /// Known.
        known: String,
    },
    /// Writing the drive failed.
    #[error(transparent)]
    Drive(#[from] nines_datasets::DatasetError),
}
