//! Property-based fuzz targets for the text formats a user edits: vehicle
//! configs, suites, training and engine configs, and label indexes. Each is
//! seeded with the repository's own file and mutated (bytes flipped, lines
//! dropped, numbers replaced by extremes); every input is parsed or refused
//! with an error naming the file, never a panic.
//!
//! `NINES_FUZZ_CASES=20000 cargo test -p nines-tests --test fuzz_configs`
//! runs each target for longer than the test command does.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::{Path, PathBuf};

use nines_harness::engine::EngineConfig;
use nines_harness::suite::Suite;
use nines_offboard::labels::LabelIndex;
use nines_offboard::training::TrainConfig;
use nines_onboard::config::Config;
use nines_tests::{fuzz_config, workspace_root};
use proptest::prelude::*;

/// Values that break careless parsers.
const EXTREMES: &[&str] =
    &["nan", "inf", "-inf", "0", "-1", "1e308", "4000000000", "\"x\"", "[]", "{}", "0..4000000000", "1e-308"];

/// `text` mutated: lines dropped, the value of some `key = value` lines
/// replaced by an extreme, and bytes flipped.
fn mutate(text: &str, drops: &[f64], values: &[(f64, usize)], flips: &[(f64, u8)]) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for &d in drops {
        if !lines.is_empty() {
            let i = ((lines.len() - 1) as f64 * d) as usize;
            lines.remove(i);
        }
    }
    for &(at, v) in values {
        if lines.is_empty() {
            continue;
        }
        let i = ((lines.len() - 1) as f64 * at) as usize;
        if let Some((key, _)) = lines[i].split_once('=') {
            lines[i] = format!("{key}= {}", EXTREMES[v % EXTREMES.len()]);
        }
    }
    let mut bytes = lines.join("\n").into_bytes();
    for &(at, x) in flips {
        if !bytes.is_empty() {
            let i = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[i] ^= x;
        }
    }
    bytes
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(workspace_root().join(relative)).unwrap()
}

/// A label folder with a real index: one small simulated drive distilled.
fn label_index() -> &'static (PathBuf, String) {
    static INDEX: std::sync::OnceLock<(PathBuf, String)> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nines-fuzz-labels-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let drive = dir.join("straight-1000000.mcap");
        let spec = nines_sim::family("straight").unwrap().draw("straight", 1_000_000);
        let options = nines_sim::record::RecordOptions { duration_secs: Some(2.0), ..Default::default() };
        nines_sim::record::record_expert(spec, &drive, &options).unwrap();
        let labels = dir.join("labels");
        let args = ["nines", "distill", "--out", labels.to_str().unwrap(), drive.to_str().unwrap()];
        nines_tools::run(<nines_tools::Cli as clap::Parser>::parse_from(args)).unwrap();
        let text = std::fs::read_to_string(labels.join("index.json")).unwrap();
        (labels, text)
    })
}

/// Lines to drop, values to replace (line, extreme), bytes to flip.
type Edits = (Vec<f64>, Vec<(f64, usize)>, Vec<(f64, u8)>);

fn edits() -> impl Strategy<Value = Edits> {
    (
        proptest::collection::vec(0.0f64..1.0, 0..3),
        proptest::collection::vec((0.0f64..1.0, 0usize..64), 0..4),
        proptest::collection::vec((0.0f64..1.0, 1u8..=255), 0..3),
    )
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn vehicle_configs_parse_or_are_refused((drops, values, flips) in edits()) {
        let text = mutate(&read("configs/vehicle-sim.toml"), &drops, &values, &flips);
        let path = Path::new("vehicle.toml");
        if let Ok(text) = std::str::from_utf8(&text)
            && let Err(e) = Config::parse(text, path)
        {
            prop_assert!(e.to_string().contains("vehicle.toml"), "{e}");
        }
    }

    #[test]
    fn suites_parse_or_are_refused((drops, values, flips) in edits(), which in 0usize..3) {
        let name = ["suites/small.toml", "suites/standard.toml", "suites/tune.toml"][which];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suite.toml");
        std::fs::write(&path, mutate(&read(name), &drops, &values, &flips)).unwrap();
        if let Ok(suite) = Suite::load(&path) {
            // A suite that loads can be expanded without running out of memory.
            prop_assert!(suite.closed_runs().len() < 50_000_000);
        }
    }

    #[test]
    fn training_and_engine_configs_parse_or_are_refused((drops, values, flips) in edits()) {
        let dir = tempfile::tempdir().unwrap();
        let engine = dir.path().join("engine.toml");
        std::fs::write(&engine, mutate(&read("configs/engine-cpu.toml"), &drops, &values, &flips)).unwrap();
        let _ = EngineConfig::load(&engine);
        let train = dir.path().join("train.toml");
        let text = "preset = \"tiny\"\nepochs = 4\nbatch_size = 16\nlearning_rate = 0.002\n\
                    recovery_weight = 2.0\n[loss]\ndepth = 1.0\nplan = 1.0\nlead = 0.5\nplan_lateral = 1.0\n";
        std::fs::write(&train, mutate(text, &drops, &values, &flips)).unwrap();
        let _ = TrainConfig::load(&train);
    }

    #[test]
    fn label_indexes_load_or_are_refused((drops, values, flips) in edits()) {
        let (labels, text) = label_index();
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(labels).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        let json = text.replace(": ", " = ");
        let mutated = mutate(&json, &drops, &values, &flips);
        let back = String::from_utf8_lossy(&mutated).replace(" = ", ": ");
        std::fs::write(dir.path().join("index.json"), back).unwrap();
        if let Ok(Some(index)) = LabelIndex::load(dir.path()) {
            for entry in &index.shards {
                prop_assert!(!entry.shard.contains('/'), "{}", entry.shard);
            }
        }
    }
}
