//! `nines recover`: keep every complete message of a cut or damaged drive.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Arguments of `nines recover`.
#[derive(Debug, Args)]
#[command(after_long_help = "Exit status: 0 nothing was lost; 3 some of the input could not be read \
(the rest is written, and what was skipped is listed); 4 nothing could be read.")]
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
    } else {
        println!(
            "kept {} messages on {} channels, {} metadata records",
            report.messages, report.channels, report.metadata
        );
        for (offset, detail) in &report.skipped_chunks {
            println!("skipped the damaged chunk at byte offset {offset}: {detail}");
        }
        match (report.stopped_at_offset, &report.stop_reason) {
            (Some(offset), Some(reason)) if report.skipped_chunks.is_empty() => {
                println!("input stopped being readable at byte offset {offset}: {reason}");
            }
            _ if report.whole() => println!("input was whole"),
            _ => {}
        }
        println!("wrote {}", args.output.display());
    }
    // 0: nothing lost; 3: some lost, the rest written; 4: nothing readable.
    if report.whole() {
        Ok(())
    } else if report.messages == 0 {
        Err(crate::Exit::new(4, format!("{}: no message could be read", args.input.display())).into())
    } else {
        Err(crate::Exit::new(3, String::new()).into())
    }
}
