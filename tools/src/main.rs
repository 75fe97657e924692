//! The `nines` command: parses arguments, sets up logging, runs, maps errors
//! to an exit code.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // One binary, two commands, as rustup's proxies are: installed under the
    // name `nines-onboard` too (scripts/demo.sh links it), it is the
    // runtime's command, so a workstation builds and links the runtime's
    // code once (docs/PERFORMANCE.md, "Build time"). Robots get the
    // `nines-onboard` binary itself, built by `nines bundle`.
    if invoked_as_onboard(std::env::args_os().next().as_deref()) {
        return nines_onboard::cli::main();
    }
    nines_onboard::exit_quietly_on_closed_pipe();
    // The features and GPU backends of this build (`nines --version`); a
    // string made once for the life of the process.
    let version: &'static str = nines_tools::build_features().leak();
    let matches = nines_tools::Cli::command().long_version(version).get_matches();
    let cli = nines_tools::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    nines_onboard::cli::init_logging("warn");
    match nines_tools::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(exit) = err.downcast_ref::<nines_tools::Exit>() {
                if !exit.message.is_empty() {
                    eprintln!("error: {}", exit.message);
                }
                return ExitCode::from(exit.code);
            }
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// Whether the program was started under a name that begins with
/// `nines-onboard` (a link, a copy, `nines-onboard.new` while installing).
fn invoked_as_onboard(argv0: Option<&std::ffi::OsStr>) -> bool {
    argv0
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("nines-onboard"))
}

/// The error and its causes on one line. Library errors keep their cause
/// as a source *and* usually say it in their own message (so a log line or
/// an index entry made from one error alone is complete); a cause is added
/// only when the text so far does not already say it.
fn describe(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
