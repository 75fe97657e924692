//! `nines export`: a trained run to ONNX, parity-checked against ONNX Runtime.

use std::path::PathBuf;

use clap::Args;
use nines_offboard::export::{ExportOptions, PARITY_TOLERANCE, export};

/// `nines export --help`.
pub(crate) const LONG_ABOUT: &str = "Export a run's best model to ONNX (opset 18): inputs `image` f32 \
[1,3F,H,W] and `speed` f32 [1,1]; outputs `depth` [1,1,H/4,W/4] m, `plan` [1,T,3] and `lead` \
[1,3] (presence probability, distance m, relative speed m/s); the model contract, training-data \
digest and validation metrics in metadata_props[\"nines.contract\"]. ONNX Runtime then runs the \
file on validation samples and every output must match burn within 1e-4 of max(|value|, 1); \
otherwise nothing is written and the error names the output and the difference.";

/// Arguments of `nines export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run folder made by `nines train`.
    pub run: PathBuf,
    /// The ONNX file to write.
    #[arg(long, default_value = "model.onnx")]
    pub out: PathBuf,
    /// Label folder for the parity samples (default: the one the run trained on).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Validation samples compared.
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Parity limit, relative to max(|value|, 1).
    #[arg(long, default_value_t = PARITY_TOLERANCE)]
    pub tolerance: f32,
}

/// Runs `nines export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let spinner = super::spinner("tracing the network and checking it in ONNX Runtime");
    let options =
        ExportOptions { samples: args.samples, labels: args.labels.clone(), tolerance: args.tolerance };
    let report = export(&args.run, &args.out, &options);
    spinner.finish_and_clear();
    let report = report?;
    println!(
        "wrote {} ({} bytes, contract {})",
        report.path.display(),
        report.bytes,
        report.card.contract_digest
    );
    for p in &report.parity {
        println!(
            "  {:<5} ONNX Runtime vs burn over {} samples: largest difference {:.2e} (relative {:.2e})",
            p.name, report.samples, p.max_abs, p.worst
        );
    }
    Ok(())
}
