//! How long work reports how far it got. The harness only counts; whoever
//! calls it decides how that looks (the CLI draws an indicatif bar on a
//! terminal and prints a line every few percent in a log; tests may stay
//! silent).

/// Progress of one stage of work at a time (generating drives, then runs).
pub trait Progress: Sync {
    /// A stage of `total` steps of `unit` (e.g. "runs") begins.
    fn start(&self, _total: u64, _unit: &'static str) {}
    /// `steps` more steps are done.
    fn advance(&self, _steps: u64) {}
    /// A short status shown with the count (e.g. "3 failures").
    fn status(&self, _status: &str) {}
    /// A line for the user (a run that could not run), shown above any bar.
    fn note(&self, _line: &str) {}
    /// The stage is over.
    fn finish(&self) {}
}

/// Progress that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}
