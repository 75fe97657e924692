//! What viewpoint augmentation feeds the network: one training sample as
//! recorded and from three moved viewpoints, as PPM images with their plan
//! labels, and the camera height each drive's depth labels give.
//!
//! `cargo run -p nines-offboard --example viewpoint_preview -- LABELS OUT_DIR [SAMPLE]`
use std::io::Write;

use nines_offboard::data::{Augment, LabelSet};
use nines_offboard::viewpoint::ViewpointAugment;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: viewpoint_preview LABELS OUT_DIR [SAMPLE]";
    let labels = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let out = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let pick: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    std::fs::create_dir_all(&out)?;
    let set = LabelSet::open(&labels, None)?;
    for (d, drive) in set.drives.iter().enumerate() {
        println!("{}: camera height {:?} m", drive.name, set.camera_height_m(d));
    }
    let all = set.samples(&[0]);
    let sample = *all.get(pick.min(all.len().saturating_sub(1))).ok_or("the first drive has no sample")?;
    let [_, h, w] = set.layout.image;
    let sure = ViewpointAugment { probability: 1.0, ..ViewpointAugment::default() };
    let contract = set.contract();
    for (name, seed) in [("recorded", None), ("moved-a", Some(1)), ("moved-b", Some(2)), ("moved-c", Some(3))]
    {
        let augment = seed.map(|seed| Augment { seed, photometric: false, viewpoint: sure });
        let batch = set.batch(&[sample], augment);
        let plan: Vec<String> =
            batch.plan.chunks(3).map(|p| format!("({:.1}, {:+.2})", p[0], p[1])).collect();
        println!("{name}: plan {}", plan.join(" "));
        let mut file = std::fs::File::create(out.join(format!("{name}.ppm")))?;
        writeln!(file, "P6 {w} {h} 255")?;
        let plane = w * h;
        let mut bytes = Vec::with_capacity(3 * plane);
        for i in 0..plane {
            for c in 0..3 {
                let v = batch.image[c * plane + i] * contract.input.std[c] + contract.input.mean[c];
                bytes.push((v.clamp(0.0, 1.0) * 255.0) as u8);
            }
        }
        file.write_all(&bytes)?;
    }
    Ok(())
}
