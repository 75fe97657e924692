//! One module per `nines` subcommand.

pub mod bench;
pub mod demo;
pub mod import;
pub mod inspect;
pub mod recover;
pub mod sim;
mod snapshot;

/// A spinner on stderr for work without a known length.
pub(crate) fn spinner(message: impl Into<std::borrow::Cow<'static, str>>) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
