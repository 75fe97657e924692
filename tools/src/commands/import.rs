//! `nines import`: public datasets into drives.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use nines_datasets::import::{import_kitti_object, import_kitti_raw};

/// Datasets nines can import.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// One KITTI 3D-object frame: DIR holds image_02.png, velodyne.bin,
    /// calib.txt and (optionally) label_2.txt; labels go to /annotations/objects.
    KittiObject {
        /// Folder with the frame's files.
        dir: PathBuf,
        /// Drive to write.
        #[arg(long)]
        out: PathBuf,
        /// Stamp for the frame, ns since the epoch (KITTI object frames have none).
        #[arg(long, default_value_t = 1_000_000_000)]
        stamp_nanos: u64,
    },
    /// A KITTI raw synced sequence: DIR holds image_02/, velodyne_points/ and
    /// oxts/ (with timestamps.txt and data/); calib_*.txt in DIR or its parent.
    KittiRaw {
        /// Sequence folder (e.g. 2011_09_26_drive_0001_sync).
        dir: PathBuf,
        /// Drive to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs an import and prints what it wrote.
pub fn run(cmd: ImportCommand) -> anyhow::Result<()> {
    match cmd {
        ImportCommand::KittiObject { dir, out, stamp_nanos } => {
            let report = import_kitti_object(&dir, &out, stamp_nanos)
                .with_context(|| format!("importing KITTI object frame {}", dir.display()))?;
            println!(
                "wrote {}: {}x{} image, {} lidar points, {} labelled objects",
                out.display(),
                report.image_size.0,
                report.image_size.1,
                report.points,
                report.objects
            );
        }
        ImportCommand::KittiRaw { dir, out } => {
            let bar = super::spinner(format!("importing {}", dir.display()));
            let report = import_kitti_raw(&dir, &out)
                .with_context(|| format!("importing KITTI raw sequence {}", dir.display()));
            bar.finish_and_clear();
            let report = report?;
            println!(
                "wrote {}: {} images, {} lidar sweeps, {} poses over {:.1} s",
                out.display(),
                report.images,
                report.sweeps,
                report.poses,
                report.duration_secs
            );
        }
    }
    Ok(())
}
