//! `nines demo`: the main job, end to end. Today: import the real KITTI
//! frame into a drive, inspect it and turn it into a rerun recording;
//! later capabilities grow it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

/// Arguments of `nines demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// KITTI object frame to start from [default: $NINES_KITTI_DIR, else
    /// ../shared/data/kitti-000008 next to the checkout].
    #[arg(long)]
    pub kitti: Option<PathBuf>,
    /// Where to write the demo's drives.
    #[arg(long, default_value = "target/nines-demo")]
    pub out: PathBuf,
}

fn kitti_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = given
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::var_os("NINES_KITTI_DIR").map(PathBuf::from))
        .chain([
            PathBuf::from("../shared/data/kitti-000008"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/kitti-000008"),
        ])
        .collect();
    candidates
        .iter()
        .find(|p| p.join("calib.txt").exists())
        .cloned()
        .with_context(|| {
            format!(
                "no KITTI object frame found (looked in {}); pass --kitti DIR with image_02.png, velodyne.bin, calib.txt, label_2.txt",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let kitti = kitti_dir(args.kitti.as_deref())?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let drive = args.out.join("kitti-000008.mcap");
    println!("[1/4] importing the real KITTI frame {} -> {}", kitti.display(), drive.display());
    let report = nines_datasets::import::import_kitti_object(&kitti, &drive, 1_000_000_000)
        .with_context(|| format!("importing {}", kitti.display()))?;
    println!("      {} lidar points, {} labelled objects", report.points, report.objects);
    println!("[2/4] inspecting {}", drive.display());
    let (summary, sync) = super::inspect::inspect(&drive)?;
    print!("{}", super::inspect::render(&summary, sync.as_ref()));
    let rrd = drive.with_extension("rrd");
    println!("[3/4] replaying {} into the rerun recording {}", drive.display(), rrd.display());
    let replayed = crate::replay::save_rrd(&drive, &rrd, &crate::replay::ReplayOptions::default())?;
    println!(
        "      {} entities; {} lidar points drawn on the camera image",
        replayed.entities.len(),
        replayed.overlaid_points
    );
    let labels = args.out.join("labels");
    println!(
        "[4/4] distilling its lidar into labels (in the model's virtual camera) -> {}",
        labels.display()
    );
    let distilled = nines_offboard::distill::distill_drive(
        &drive,
        &nines_kernels::Kernels::cpu(),
        &nines_offboard::distill::DistillOptions::default(),
        &|| {},
    )?;
    let stats = nines_offboard::labels::LabelStats::of(&distilled);
    std::fs::create_dir_all(&labels).with_context(|| format!("creating {}", labels.display()))?;
    nines_offboard::labels::write_shard(
        &labels.join("kitti-000008.safetensors"),
        &distilled,
        &nines_datasets::contract::ModelContract::default().digest(),
        &nines_offboard::labels::file_digest(&drive)?,
    )?;
    println!(
        "      depth on {:.1}% of the {}x{} label, lead {} ({:.1} m ahead)",
        100.0 * stats.depth_coverage,
        distilled.depth_shape[1],
        distilled.depth_shape[0],
        if stats.lead_present > 0 { "found" } else { "none" },
        distilled.lead.get(1).copied().unwrap_or(0.0)
    );
    println!("\ndemo done:");
    println!(
        "  look at the frame:  nines replay {}   (or: .venv/bin/rerun {})",
        drive.display(),
        rrd.display()
    );
    println!("  inspect the drive:  nines inspect {}", drive.display());
    println!("  distil it yourself: nines distill {} --out labels --native --report", drive.display());
    Ok(())
}
