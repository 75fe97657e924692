//! Training and export end to end, on CPU: simulated drives distilled into
//! labels, the tiny network trained for a couple of minutes and scored on
//! held-out drives against the baselines, exported to ONNX and checked by
//! the peers (onnx.checker, Python onnxruntime) and by `ort` in Rust.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;
use nines_datasets::contract::ModelContract;
use nines_offboard::OffboardError;
use nines_offboard::export::{ExportOptions, export, read_card, run_inference};
use nines_offboard::training::{Progress, Start, TrainConfig, TrainDevice, TrainSummary, train};
use nines_tests::{run_peer, shared_fixture_dir};

/// Simulated drives distilled once for every test in this file.
fn labels() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = shared_fixture_dir(env!("CARGO_TARGET_TMPDIR"), "train-fixture");
        let drives = dir.join("drives");
        let labels = dir.join("labels");
        let nines = |args: &[&str]| {
            let cli = nines_tools::Cli::parse_from(std::iter::once("nines").chain(args.iter().copied()));
            nines_tools::run(cli).unwrap();
        };
        let out = drives.to_str().unwrap();
        nines(&[
            "sim",
            "batch",
            "--families",
            "straight,curves,lead_brake,cut_in,stopped_vehicle,parked_street",
            "--seeds",
            "0..1",
            "--duration",
            "20",
            "--width",
            "256",
            "--height",
            "128",
            "--out",
            out,
        ]);
        let mut args = vec!["distill".to_owned()];
        let mut mcaps: Vec<PathBuf> =
            std::fs::read_dir(&drives).unwrap().map(|e| e.unwrap().path()).collect();
        mcaps.sort();
        args.extend(mcaps.iter().map(|p| p.to_string_lossy().into_owned()));
        args.extend(["--out".into(), labels.to_string_lossy().into_owned(), "--jobs".into(), "2".into()]);
        nines(&args.iter().map(String::as_str).collect::<Vec<_>>());
        labels
    })
}

fn config(text: &str) -> TrainConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.toml");
    std::fs::write(&path, text).unwrap();
    TrainConfig::load(&path).unwrap()
}

/// Training runs one at a time: burn's CPU backend seeds one process-wide
/// generator, so two trainings initialising at once would draw each other's
/// weights (one `nines train` per process never does).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn train_quietly(config: &TrainConfig, out: &Path, resume: bool) -> Result<TrainSummary, OffboardError> {
    let start = if resume { Start::Resume } else { Start::Fresh };
    train(&[labels().to_path_buf()], Some(config), out, TrainDevice::Cpu, start, &mut |_| {})
}

#[test]
fn tiny_model_beats_the_baselines_on_held_out_drives_and_exports_to_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("runs/tiny");
    let lock = one_at_a_time();
    let summary = train_quietly(&config("preset = \"tiny\"\nepochs = 4\n"), &run, false).unwrap();
    let best = summary.epochs.iter().min_by(|a, b| a.score().total_cmp(&b.score())).unwrap();
    let (model, baseline) = (&best.validation, &summary.baselines.metrics);
    assert!(model.depth.pixels > 10_000 && model.plan.samples[1] > 50, "{model:?}");
    assert!(
        model.depth.abs_rel < baseline.depth.abs_rel,
        "depth AbsRel {:.3} vs mean-depth baseline {:.3}",
        model.depth.abs_rel,
        baseline.depth.abs_rel
    );
    assert!(
        model.plan.ade[1] <= 1.2 * baseline.plan.ade[1],
        "plan ADE@2s {:.3} m vs constant velocity {:.3} m",
        model.plan.ade[1],
        baseline.plan.ade[1]
    );
    // The moved-viewpoint check ran every epoch, and its constant-velocity
    // baseline (which never steers back) is worse there than on recorded frames.
    let (moved, moved_baseline) =
        (best.moved_plan.as_ref().unwrap(), summary.baselines.moved_plan.as_ref().unwrap());
    assert!(moved.samples[1] > 50, "{moved:?}");
    assert!(moved_baseline.ade[1] > baseline.plan.ade[1], "{moved_baseline:?} vs {:?}", baseline.plan);
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    drop(lock);
    assert_eq!(lines.lines().count(), 4);
    for file in ["config.toml", "model.json", "contract.json", "split.json", "best/model.bpk", "state.json"] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("split.json")).unwrap()).unwrap();
    let (train_drives, validation_drives) =
        (split["train"].as_array().unwrap(), split["validation"].as_array().unwrap());
    assert!(!validation_drives.is_empty() && validation_drives.iter().all(|v| !train_drives.contains(v)));

    // Export through the CLI; the model card names the contract and the metrics.
    let onnx = dir.path().join("model.onnx");
    let cli = nines_tools::Cli::parse_from([
        "nines",
        "export",
        run.to_str().unwrap(),
        "--out",
        onnx.to_str().unwrap(),
    ]);
    nines_tools::run(cli).unwrap();
    let card = read_card(&onnx).unwrap();
    assert_eq!(card.contract, ModelContract::default());
    assert_eq!(card.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["depth", "plan", "lead"]);
    assert!(card.metrics["depth"]["abs_rel"].as_f64().unwrap() > 0.0);

    // Peers: onnx.checker (full check) and Python onnxruntime, against ort in Rust.
    let contract = ModelContract::default();
    let (w, h) = (contract.input.width as usize, contract.input.height as usize);
    let image: Vec<f32> = (0..6 * h * w).map(|i| ((i % 251) as f32 / 125.0) - 1.0).collect();
    let inputs = dir.path().join("inputs.json");
    std::fs::write(
        &inputs,
        serde_json::json!({"image": image, "image_shape": [1, 6, h, w], "speed": 7.5}).to_string(),
    )
    .unwrap();
    let peer_out = dir.path().join("peer.json");
    let _ = run_peer("onnx_check.py", &[&onnx, &inputs, &peer_out]);
    let peer: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&peer_out).unwrap()).unwrap();
    assert_eq!(peer["shapes"]["depth"], serde_json::json!([1, 1, h / 4, w / 4]));
    assert_eq!(peer["shapes"]["plan"], serde_json::json!([1, 6, 3]));
    assert_eq!(peer["shapes"]["lead"], serde_json::json!([1, 3]));
    assert_eq!(peer["inputs"]["image"], serde_json::json!([1, 6, h, w]));
    assert!(peer["metadata"]["nines.contract"].as_str().unwrap().contains("\"plan_times_secs\""));
    let config = nines_onboard::config::ModelConfig::default();
    let mut inference = nines_onboard::inference::Inference::load(&onnx, &config, dir.path()).unwrap();
    let ours = run_inference(&mut inference, &image, 7.5).unwrap();
    for (name, values) in ["depth", "plan", "lead"].iter().zip(&ours) {
        let theirs: Vec<f32> =
            peer["outputs"][name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(theirs.len(), values.len(), "{name}");
        let worst =
            theirs.iter().zip(values).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "{name}: Python onnxruntime and ort differ by {worst}");
    }
    let lead = &ours[2];
    assert!((0.0..=1.0).contains(&lead[0]), "presence is a probability: {lead:?}");

    // A parity bound no float computation meets: nothing written, the error names the output.
    let refused = dir.path().join("refused.onnx");
    let options = ExportOptions { tolerance: 0.0, samples: 4, ..ExportOptions::default() };
    let error = export(&run, &refused, &options).unwrap_err().to_string();
    assert!(!refused.exists(), "a model that failed parity was written");
    assert!(error.contains("parity failed: output `") && error.contains("differs"), "{error}");
}

#[test]
fn a_moved_viewpoint_moves_the_pixels_and_the_plan_and_drops_the_depth() {
    use nines_offboard::data::LabelSet;
    use nines_offboard::viewpoint::Shift;
    let set = LabelSet::open(labels(), None).unwrap();
    assert!(set.moves_viewpoints());
    // Every drive's road gives the simulator's camera height (1.4 m on a 2 degree pitch).
    for d in 0..set.drives.len() {
        let h = set.camera_height_m(d).unwrap();
        assert!((1.25..1.5).contains(&h), "drive {d}: {h} m");
    }
    // A frame of a moving car, seen as recorded and from 0.8 m to the left.
    let drive = set.drives.iter().position(|d| d.name.starts_with("straight")).unwrap();
    let sample =
        set.samples(&[drive]).into_iter().find(|s| set.drives[drive].speed[s.frame as usize] > 5.0).unwrap();
    let recorded = set.batch(&[sample], None);
    let left = set.batch_seen_from(&[sample], Shift { lateral_m: 0.8, yaw_rad: 0.0 }, 0.4);
    assert!(recorded.depth.iter().any(|&d| d > 0.0) && left.depth.iter().all(|&d| d == 0.0));
    let changed = recorded.image.iter().zip(&left.image).filter(|(a, b)| (*a - *b).abs() > 0.05).count();
    assert!(changed > recorded.image.len() / 20, "{changed} of {} values changed", recorded.image.len());
    // The plan now heads right, back to the recorded path, by nearly 0.8 m at 3 s.
    let t = set.layout.plan_steps;
    let dy = |i: usize| left.plan[3 * i + 1] - recorded.plan[3 * i + 1];
    assert!(dy(0) < 0.0 && (dy(t - 1) + 0.8).abs() < 0.05, "{:?} vs {:?}", left.plan, recorded.plan);
    // A car too slow to rejoin its path within the plan is never moved.
    if let Some(slow) = (0..set.drives.len())
        .flat_map(|d| set.samples(&[d]))
        .find(|s| set.drives[s.drive as usize].speed[s.frame as usize] < 1.0)
    {
        let as_recorded = set.batch(&[slow], None);
        let moved = set.batch_seen_from(&[slow], Shift { lateral_m: 0.8, yaw_rad: 0.1 }, 0.4);
        assert_eq!((moved.plan, moved.image), (as_recorded.plan, as_recorded.image));
    }
}

#[test]
fn resume_continues_exactly_where_the_checkpoint_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let _lock = one_at_a_time();
    let config = config("preset = \"tiny\"\nsteps_per_epoch = 6\nbatch_size = 8\nepochs = 2\n");
    let straight = dir.path().join("straight");
    train_quietly(&config, &straight, false).unwrap();

    // The same run, killed halfway through its second epoch.
    let resumed = dir.path().join("resumed");
    let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut epoch = 0;
        let mut steps = 0;
        train(&[labels().to_path_buf()], Some(&config), &resumed, TrainDevice::Cpu, Start::Fresh, &mut |p| {
            match p {
                Progress::EpochStart { epoch: e, .. } => epoch = *e,
                Progress::Step { .. } if epoch == 2 => {
                    steps += 1;
                    assert!(steps < 3, "killed mid-epoch");
                }
                _ => {}
            }
        })
    }));
    assert!(killed.is_err());
    // Without --resume an existing run is refused; with it, the run goes on.
    let error = train_quietly(&config, &resumed, false).unwrap_err();
    assert!(error.to_string().contains("--resume"), "{error}");
    let summary = train_quietly(&config, &resumed, true).unwrap();
    assert_eq!(summary.epochs.len(), 2);

    let metrics = |run: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("images_per_sec");
                v
            })
            .collect()
    };
    // Losses and validation metrics of both epochs, to the last bit.
    assert_eq!(metrics(&straight), metrics(&resumed));

    // A warm start (a data engine's next round) on the same labels given
    // twice (counted once) starts where `straight` ended.
    let one = crate::config("preset = \"tiny\"\nsteps_per_epoch = 6\nbatch_size = 8\nepochs = 1\n");
    let both = [labels().to_path_buf(), labels().to_path_buf()];
    let warm = dir.path().join("warm");
    let warm_summary =
        train(&both, Some(&one), &warm, TrainDevice::Cpu, Start::From(&straight), &mut |_| {}).unwrap();
    let cold = train_quietly(&one, &dir.path().join("cold"), false).unwrap();
    let first = |s: &TrainSummary| s.epochs[0].train_loss.total;
    assert!(first(&warm_summary) < first(&cold), "{} vs {}", first(&warm_summary), first(&cold));
    let source: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(warm.join("source.json")).unwrap()).unwrap();
    assert!(source["init"].as_str().unwrap().ends_with("straight"), "{source}");

    // Another architecture is refused before any epoch, naming the presets.
    let other = dir.path().join("other-arch");
    std::fs::create_dir_all(&other).unwrap();
    for file in ["config.toml", "contract.json", "split.json", "source.json", "model.json"] {
        std::fs::copy(straight.join(file), other.join(file)).unwrap();
    }
    let default_model =
        nines_offboard::model::ModelConfig::preset("default", &ModelContract::default()).unwrap();
    std::fs::write(other.join("model.json"), serde_json::to_string(&default_model).unwrap()).unwrap();
    let refused = dir.path().join("refused");
    let error =
        train(&both, Some(&one), &refused, TrainDevice::Cpu, Start::From(&other), &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("same architecture"), "{error}");
}

#[test]
fn bad_configs_and_foreign_labels_are_refused_with_the_key_or_the_differences() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.toml");
    std::fs::write(&path, "preset = \"tiny\"\nepoch = 3\n").unwrap();
    let error = TrainConfig::load(&path).unwrap_err().to_string();
    assert!(error.contains("epoch") && error.contains("train.toml"), "{error}");
    std::fs::write(&path, "batch_size = 1\n").unwrap();
    let error = TrainConfig::load(&path).unwrap_err().to_string();
    assert!(error.contains("batch_size"), "{error}");

    // A run's contract is the labels'; a label folder under another contract is refused.
    let other = ModelContract { plan_times_secs: vec![1.0, 2.0, 3.0], ..ModelContract::default() };
    let error = nines_offboard::data::LabelSet::open(labels(), Some(&other)).unwrap_err().to_string();
    assert!(error.contains("plan_times_secs") && error.contains("contract"), "{error}");

    // GPU training in a build without the `gpu` feature (the test build)
    // says how to get it, and writes nothing.
    let gpu_run = dir.path().join("gpu");
    let error = train(&[labels().to_path_buf()], None, &gpu_run, TrainDevice::Gpu, Start::Fresh, &mut |_| {})
        .unwrap_err();
    assert!(error.to_string().contains("--features gpu"), "{error}");
    assert!(error.to_string().contains("--features torch"), "{error}");
    assert!(!gpu_run.exists());
    // So does each GPU backend named explicitly.
    for (device, feature) in [
        (TrainDevice::LibTorchCuda, "--features torch"),
        (TrainDevice::LibTorchCpu, "--features torch"),
        (TrainDevice::Vulkan, "--features gpu"),
    ] {
        let error = train(&[labels().to_path_buf()], None, &gpu_run, device, Start::Fresh, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(error.contains(feature) && error.contains("docs/TRAINING.md"), "{device:?}: {error}");
        assert!(!gpu_run.exists());
    }
}

/// A run moves between backends: checkpoints are burn records, not a
/// backend's tensors. Trained one epoch on flex, resumed on LibTorch, then
/// on flex again, and exported (the parity check against ONNX Runtime).
/// LibTorch runs on this machine's CPU here; on a GPU machine the same
/// binary trains on CUDA (scripts/device/round.sh).
#[test]
#[ignore = "needs the LibTorch build: bash scripts/device/build.sh; cargo test -p nines-tests --test train -- --ignored"]
fn a_run_resumes_across_backends_and_exports() {
    let nines = std::env::var_os("NINES_DEVICE_BIN")
        .map_or_else(|| nines_tests::workspace_root().join("build/nines-slim"), PathBuf::from);
    assert!(nines.exists(), "{} not found: run `bash scripts/device/build.sh`", nines.display());
    let lib = std::process::Command::new(nines_tests::torch_python())
        .args(["-c", "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
        .output()
        .unwrap();
    let lib = String::from_utf8(lib.stdout).unwrap().trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_nines = |args: &[&str]| {
        let output =
            std::process::Command::new(&nines).args(args).env("LD_LIBRARY_PATH", &lib).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "nines {args:?}:\n{text}");
        text
    };
    let labels = labels().to_str().unwrap();
    for (epochs, backend, says) in
        [(1, "flex", "burn flex, CPU"), (2, "libtorch", "burn LibTorch, CPU"), (3, "flex", "burn flex, CPU")]
    {
        let config = dir.path().join(format!("train-{epochs}.toml"));
        let text = format!("preset = \"tiny\"\nepochs = {epochs}\nbatch_size = 8\nsteps_per_epoch = 6\n");
        std::fs::write(&config, text).unwrap();
        let mut args = vec![
            "train",
            "--labels",
            labels,
            "--config",
            config.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ];
        args.extend(["--device", "cpu", "--backend", backend]);
        if epochs > 1 {
            args.push("--resume");
        }
        let said = run_nines(&args);
        assert!(said.contains(&format!("training on {says}")), "{said}");
        assert!(said.contains(&format!("epoch {epochs}:")), "{said}");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    let model = dir.path().join("model.onnx");
    run_nines(&["export", run.to_str().unwrap(), "--out", model.to_str().unwrap()]);
    assert!(model.metadata().unwrap().len() > 10_000);
}
