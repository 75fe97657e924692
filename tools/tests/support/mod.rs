//! Shared by the flash and cross tests.

/// Runs `nines ARGS` in this process.
pub fn nines<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> anyhow::Result<()> {
    use clap::Parser;
    let argv = std::iter::once("nines".as_ref()).chain(args.iter().map(AsRef::as_ref));
    nines_tools::run(nines_tools::Cli::try_parse_from(argv)?)
}

/// `nines bundle --model --config --key --out` and `extra` flags.
pub fn bundle(
    model: &std::path::Path,
    config: &std::path::Path,
    key: &std::path::Path,
    out: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> anyhow::Result<()> {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "bundle".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    args.extend_from_slice(extra);
    nines(&args)
}

/// `nines flash BUNDLE --root ROOT --pubkey KEY` and `extra` flags: an
/// install into a local folder.
pub fn flash_local(
    bundle: &std::path::Path,
    root: &std::path::Path,
    pubkey: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> anyhow::Result<()> {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "flash".as_ref(),
        bundle.as_os_str(),
        "--root".as_ref(),
        root.as_os_str(),
        "--pubkey".as_ref(),
        pubkey.as_os_str(),
    ];
    args.extend_from_slice(extra);
    nines(&args)
}
