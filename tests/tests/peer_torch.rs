//! The PyTorch peer (scripts/peers/torch_model.py), which `nines bench
//! train` is measured against on a GPU, is the same network as burn's: the
//! same parameter count and output shapes for both presets, and the same
//! constant-velocity start of the plan.
//!
//! Ignored in the test command: PyTorch's Linux wheel on PyPI is the CUDA
//! build, 4.6 GB with its libraries, too big for the setup script. Run:
//!   bash scripts/device/build.sh      # or any Python with torch: NINES_TORCH_PYTHON=...
//!   cargo test -p nines-tests --test peer_torch -- --ignored

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::process::Command;

use burn::prelude::*;
use nines_datasets::contract::ModelContract;
use nines_offboard::model::{ModelConfig, to_vec};
use nines_tests::{torch_python, workspace_root};

#[test]
#[ignore = "needs PyTorch: cargo test -p nines-tests --test peer_torch -- --ignored (docs/TRAINING.md)"]
fn the_pytorch_peer_is_burns_network_for_both_presets() {
    // A contract other than the default, so the peer's contract reading is tested too.
    let mut contract = ModelContract::default();
    contract.input.width = 320;
    contract.input.height = 96;
    contract.input.frames = 3;
    contract.plan_times_secs = vec![1.0, 2.0, 4.0];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contract.json");
    std::fs::write(&path, serde_json::to_string(&contract).unwrap()).unwrap();
    let device = Device::flex();
    for preset in ["tiny", "default"] {
        let model = ModelConfig::preset(preset, &contract).unwrap().init(&device).valid();
        let image = Tensor::<4>::zeros([2, 9, 96, 320], &device);
        let speed = Tensor::<2>::from_floats([[4.0], [0.0]], &device);
        let (depth, plan, lead) = model.forward(image, speed);
        let shapes = [depth.dims().to_vec(), plan.dims().to_vec(), lead.dims().to_vec()];
        let last_x = to_vec(plan).unwrap()[3 * 2];

        let output = Command::new(torch_python())
            .arg(workspace_root().join("scripts/peers/torch_model.py"))
            .args(["describe", "--preset", preset, "--contract"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let peer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(peer["parameters"].as_u64().unwrap() as usize, model.num_params(), "{preset}: {peer}");
        let outputs = &peer["outputs"];
        for (name, shape) in ["depth", "plan", "lead"].iter().zip(&shapes) {
            let theirs: Vec<usize> =
                outputs[name].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            assert_eq!(&theirs, shape, "{preset} {name}");
        }
        let theirs = peer["constant_velocity_x_at_last_step"].as_f64().unwrap();
        assert!(
            (theirs - f64::from(last_x)).abs() < 1e-4 && (theirs - 16.0).abs() < 1e-4,
            "{theirs} vs {last_x}"
        );
    }
}
