//! Shared by the flash and cross tests.

/// Runs `nines ARGS` in this process.
pub fn nines<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> anyhow::Result<()> {
    use clap::Parser;
    let argv = std::iter::once("nines".as_ref()).chain(args.iter().map(AsRef::as_ref));
    nines_tools::run(nines_tools::Cli::try_parse_from(argv)?)
}
