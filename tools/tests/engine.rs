//! `nines engine` end to end with a tiny config: one round of disturbed
//! collection, distillation, one epoch, export and eval; killed part way
//! and run again, it finishes with the same ledger as an uninterrupted run.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn nines(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nines")).args(args).output().expect("running nines")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Every run of the ledger as (release, key, outcome, category, seen in training).
fn ledger_rows(ledger: &Path) -> Vec<(String, String, String, Option<String>, bool)> {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT releases.name, runs.key, runs.outcome, runs.category, runs.seen_in_training
             FROM runs JOIN releases ON releases.id = runs.release_id ORDER BY releases.name, runs.key",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_tiny_engine_runs_a_round_and_resumes_after_a_kill_to_the_same_ledger() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("suite.toml"),
        "name = \"tiny\"\n[camera]\nwidth = 256\nheight = 128\n\
         [[closed_loop]]\nfamilies = [\"straight\"]\nseeds = \"0\"\nduration_s = 8.0\n",
    )
    .unwrap();
    let config = dir.path().join("engine.toml");
    std::fs::write(
        &config,
        "name = \"t\"\nrounds = 1\nfamilies = [\"straight\"]\nseeds_per_round = 2\nduration_s = 8.0\n\
         epochs = 1\nbatch_size = 4\nsuite = \"suite.toml\"\njobs = 2\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let whole = dir.path().join("whole");
    let out = nines(&["engine", "--config", config, "--out", whole.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("round 0:") && shown.contains("nines on tiny"), "{shown}");
    assert!(whole.join("round-0/model.onnx").exists() && whole.join("report.html").exists());
    let rows = ledger_rows(&whole.join("nines.db"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("t-r0", "closed/straight/0"));
    assert!(!rows[0].4, "trained on collection seeds only: nothing seen in training");

    // Killed once training has started, then the same command again.
    let killed = dir.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nines"))
        .args(["engine", "--config", config, "--out", killed.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !killed.join("round-0/run/config.toml").exists() && started.elapsed() < Duration::from_mins(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("round-0/model.onnx").exists(), "killed before the export");
    let out = nines(&["engine", "--config", config, "--out", killed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ledger_rows(&killed.join("nines.db")),
        rows,
        "the resumed engine's ledger is the uninterrupted one's"
    );

    // Done: running it again changes nothing.
    let again = nines(&["engine", "--config", config, "--out", killed.to_str().unwrap()]);
    assert!(again.status.success() && text(&again).contains("trained already"), "{}", text(&again));
    assert_eq!(ledger_rows(&killed.join("nines.db")), rows);
}
