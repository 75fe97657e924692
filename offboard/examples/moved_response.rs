//! How a trained run's plan answers a moved viewpoint: the mean lateral
//! plan point at 1 s on validation frames, as recorded and moved by fixed
//! amounts, against what the moved labels ask for.
//!
//! `cargo run -p nines-offboard --example moved_response -- RUN`
use std::sync::Arc;

use burn::prelude::*;
use nines_offboard::data::LabelSet;
use nines_offboard::model::to_vec;
use nines_offboard::training::load_run;
use nines_offboard::viewpoint::Shift;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run = std::path::PathBuf::from(std::env::args().nth(1).ok_or("RUN")?);
    let trained = load_run(&run)?;
    let set = Arc::new(LabelSet::open_all(&trained.run.source.labels, Some(&trained.run.contract))?);
    let validation = set.drive_indices(&trained.run.split.validation)?;
    let samples: Vec<_> = set.samples(&validation).into_iter().step_by(3).collect();
    let tau = trained.run.config.viewpoint.recovery_time_s;
    let model = trained.model.valid();
    let device = Device::flex();
    let [_, h, w] = set.layout.image;
    let c = 3 * set.frames_per_sample;
    let t = set.layout.plan_steps;
    for (name, shift, yaw) in [
        ("recorded", 0.0, 0.0),
        ("left 0.75 m", 0.75, 0.0),
        ("right 0.75 m", -0.75, 0.0),
        ("turned left 4 deg", 0.0, 4.0),
        ("turned right 4 deg", 0.0, -4.0),
    ] {
        let (mut predicted, mut label, mut n) = (0.0f64, 0.0f64, 0usize);
        for chunk in samples.chunks(32) {
            let batch =
                set.batch_seen_from(chunk, Shift { lateral_m: shift, yaw_rad: f64::to_radians(yaw) }, tau);
            let image =
                Tensor::<4>::from_data(TensorData::new(batch.image.clone(), [batch.size, c, h, w]), &device);
            let speed =
                Tensor::<2>::from_data(TensorData::new(batch.speed.clone(), [batch.size, 1]), &device);
            let plan = to_vec(model.forward_raw(image, speed).plan)?;
            for b in 0..batch.size {
                if batch.plan_valid[b * t + 1] > 0.5 && batch.speed[b] > 3.0 {
                    predicted += f64::from(plan[b * t * 3 + 4]);
                    label += f64::from(batch.plan[b * t * 3 + 4]);
                    n += 1;
                }
            }
        }
        println!(
            "{name:>20}: plan y@1s {:+.3} m, label {:+.3} m ({n} frames)",
            predicted / n as f64,
            label / n as f64
        );
    }
    Ok(())
}
