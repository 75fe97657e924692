//! `nines recover`: keep every complete message of a cut or damaged drive.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Arguments of `nines recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The cut or damaged drive (left untouched).
    pub input: PathBuf,
    /// Where to write the repaired drive.
    pub output: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `nines recover`.
pub fn run(args: &RecoverArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.input.canonicalize().ok() != args.output.canonicalize().ok() || !args.output.exists(),
        "{}: refusing to overwrite the input; give another output path",
        args.output.display()
    );
    let report = nines_datasets::drive::recover(&args.input, &args.output)
        .with_context(|| format!("recovering {}", args.input.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "kept {} messages on {} channels, {} metadata records",
        report.messages, report.channels, report.metadata
    );
    match (report.stopped_at_offset, &report.stop_reason) {
        (Some(offset), Some(reason)) => {
            println!("input stopped being readable at byte offset {offset}: {reason}");
        }
        _ => println!("input was whole"),
    }
    println!("wrote {}", args.output.display());
    Ok(())
}
