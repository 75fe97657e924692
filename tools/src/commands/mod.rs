//! One module per `nines` subcommand.

pub mod bench;
mod bench_project;
mod bench_runtime;
#[cfg(feature = "network")]
pub mod bench_zenoh;
pub mod bundle;
pub mod certs;
pub mod collect;
pub mod demo;
pub mod distill;
pub mod engine;
pub mod eval;
pub mod export;
pub mod flash;
pub mod import;
pub mod inspect;
#[cfg(feature = "network")]
pub mod net;
pub mod peers;
pub mod recover;
#[cfg(feature = "viewer")]
pub mod replay;
pub mod sim;
#[cfg(feature = "network")]
pub mod sim_serve;
mod snapshot;
pub mod train;

/// A spinner on stderr for work without a known length.
pub(crate) fn spinner(message: impl Into<std::borrow::Cow<'static, str>>) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A progress bar on stderr counting `unit` (hidden when stderr is not a terminal).
pub(crate) fn progress_bar(len: u64, unit: &'static str) -> indicatif::ProgressBar {
    let style =
        indicatif::ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{eta}})"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    indicatif::ProgressBar::new(len).with_style(style)
}

/// The harness's progress for a person: an indicatif bar on a terminal, and
/// without one (a cluster job's log, a pipe) a line every 5% on stderr.
/// Off a terminal progress bars are hidden; a `Ticker` prints a line every
/// 5% of a bar's length instead ("distill: 1200/2400 frames"), as `eval`'s
/// progress does, so a log shows long work moving.
pub(crate) struct Ticker {
    label: String,
    unit: &'static str,
    next: std::sync::atomic::AtomicU64,
}

impl Ticker {
    pub(crate) fn new(label: impl Into<String>, unit: &'static str) -> Self {
        Self { label: label.into(), unit, next: std::sync::atomic::AtomicU64::new(0) }
    }

    /// Call after moving `bar`: prints when it crossed the next 5%.
    pub(crate) fn tick(&self, bar: &indicatif::ProgressBar) {
        if bar.is_hidden()
            && let Some(line) = self.line(bar.position(), bar.length().unwrap_or(0))
        {
            eprintln!("{line}");
        }
    }

    /// The line due at `done` of `total`, if one is.
    fn line(&self, done: u64, total: u64) -> Option<String> {
        use std::sync::atomic::Ordering;
        let next = self.next.load(Ordering::Relaxed);
        let due = (done + (total / 20).max(1)).min(total.max(done + 1));
        (done >= next && self.next.compare_exchange(next, due, Ordering::Relaxed, Ordering::Relaxed).is_ok())
            .then(|| format!("{}: {done}/{total} {}", self.label, self.unit))
    }

    /// Starts over (a new epoch of the same bar).
    pub(crate) fn restart(&self, label: impl Into<String>) -> Self {
        Self::new(label, self.unit)
    }
}

pub(crate) struct BarProgress {
    label: String,
    stage: std::sync::Mutex<Stage>,
}

/// The stage a [`BarProgress`] is showing.
struct Stage {
    bar: indicatif::ProgressBar,
    unit: &'static str,
    status: String,
    next_line: u64,
}

impl BarProgress {
    /// Progress whose log lines start with `label` (e.g. "eval tiny-1").
    pub(crate) fn new(label: impl Into<String>) -> Self {
        let stage =
            Stage { bar: indicatif::ProgressBar::hidden(), unit: "", status: String::new(), next_line: 0 };
        Self { label: label.into(), stage: std::sync::Mutex::new(stage) }
    }

    fn stage(&self) -> std::sync::MutexGuard<'_, Stage> {
        self.stage.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl nines_harness::Progress for BarProgress {
    fn start(&self, total: u64, unit: &'static str) {
        let mut stage = self.stage();
        *stage = Stage { bar: progress_bar(total, unit), unit, status: String::new(), next_line: 0 };
    }

    fn advance(&self, steps: u64) {
        let mut stage = self.stage();
        stage.bar.inc(steps);
        let (done, total) = (stage.bar.position(), stage.bar.length().unwrap_or(0));
        if stage.bar.is_hidden() && (done >= stage.next_line || done == total) {
            stage.next_line = done + (total / 20).max(1);
            let status = if stage.status.is_empty() { String::new() } else { format!(", {}", stage.status) };
            eprintln!("{}: {done}/{total} {}{status}", self.label, stage.unit);
        }
    }

    fn status(&self, status: &str) {
        let mut stage = self.stage();
        stage.bar.set_message(status.to_owned());
        status.clone_into(&mut stage.status);
    }

    fn note(&self, line: &str) {
        let stage = self.stage();
        if stage.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            stage.bar.println(line);
        }
    }

    fn finish(&self) {
        self.stage().bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Ticker;

    #[test]
    fn a_ticker_prints_every_five_percent_and_the_end() {
        let ticker = Ticker::new("distill", "frames");
        let lines: Vec<String> = (1..=100).filter_map(|done| ticker.line(done, 100)).collect();
        assert_eq!(lines.len(), 21, "{lines:?}");
        assert_eq!(lines[0], "distill: 1/100 frames");
        assert_eq!(lines.last().map(String::as_str), Some("distill: 100/100 frames"));
        let few = Ticker::new("sim batch", "drives");
        assert_eq!((1..=3).filter_map(|done| few.line(done, 3)).count(), 3);
    }
}
