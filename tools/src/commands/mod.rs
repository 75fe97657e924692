//! One module per `nines` subcommand.

pub mod bench;
mod bench_project;
mod bench_runtime;
pub mod bench_zenoh;
pub mod bundle;
pub mod certs;
pub mod demo;
pub mod distill;
pub mod eval;
pub mod export;
pub mod flash;
pub mod import;
pub mod inspect;
pub mod net;
pub mod recover;
pub mod replay;
pub mod sim;
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
