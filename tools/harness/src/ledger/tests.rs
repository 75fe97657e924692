//! Tests of `ledger`.

use super::*;

fn release(name: &str, digest: &str) -> Release {
    Release {
        id: 0,
        name: name.into(),
        created_at: "2026-11-23T00:00:00Z".into(),
        suite: "small".into(),
        suite_digest: "s".into(),
        policy: "model".into(),
        model_path: Some("m.onnx".into()),
        model_digest: Some(digest.into()),
        contract: None,
        tool_version: "0.1.0".into(),
    }
}

fn run(key: &str, outcome: Outcome) -> RunRecord {
    RunRecord {
        key: key.into(),
        kind: "closed".into(),
        family: "straight".into(),
        seed: Some(3),
        drive: None,
        must_pass: false,
        outcome,
        category: (outcome == Outcome::Fail).then(|| "off_road".into()),
        km: 0.3,
        hours: 30.0 / 3600.0,
        kept_drive: None,
        replay: None,
        events: vec![RunEvent {
            time_s: 4.5,
            category: "off_road".into(),
            detail: "left".into(),
            value: 2.0,
        }],
        metrics: vec![("progress_m".into(), 300.0)],
        seen_in_training: false,
    }
}

#[test]
fn runs_round_trip_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/nines.db");
    let mut ledger = Ledger::open(&path).unwrap();
    let r = ledger.add_release(&release("v1", "aaa")).unwrap();
    ledger.record_run(r.id, &run("closed/straight/3", Outcome::Fail)).unwrap();
    assert!(ledger.record_run(r.id, &run("closed/straight/3", Outcome::Pass)).is_err());
    let runs = ledger.runs(r.id).unwrap();
    assert_eq!(runs, vec![run("closed/straight/3", Outcome::Fail)]);
    // Resuming the same release is fine; another model under its name is not.
    assert_eq!(ledger.add_release(&release("v1", "aaa")).unwrap().id, r.id);
    let err = ledger.add_release(&release("v1", "bbb")).unwrap_err().to_string();
    assert!(err.contains("new --release name"), "{err}");
    drop(ledger);
    let reopened = Ledger::open_existing(&path).unwrap();
    assert_eq!(reopened.releases().unwrap().len(), 1);
}

#[test]
fn non_finite_numbers_never_reach_the_ledger_and_a_release_can_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("nines.db")).unwrap();
    let r = ledger.add_release(&release("nan", "aaa")).unwrap();
    let mut bad = run("closed/straight/4", Outcome::Pass);
    bad.events.clear();
    bad.km = f64::NAN;
    bad.metrics.push(("plan_error_mean_m".into(), f64::INFINITY));
    ledger.record_run(r.id, &bad).unwrap();
    ledger.record_run(r.id, &run("closed/straight/5", Outcome::Pass)).unwrap();
    let runs = ledger.runs(r.id).unwrap();
    let stored = &runs[0];
    assert_eq!((stored.km, stored.outcome), (0.0, Outcome::Fail));
    assert_eq!(stored.category.as_deref(), Some("system_fault"));
    assert!(
        stored.events[0].detail.contains("km = NaN") && stored.events[0].detail.contains("plan_error_mean_m")
    );
    assert!(stored.metrics.iter().all(|(_, v)| v.is_finite()));
    assert_eq!(runs[1].outcome, Outcome::Pass, "the rest of the release is recorded");
    // Removed whole: runs, events, metrics; then the name is free again.
    assert_eq!(ledger.remove_release("nan").unwrap(), 2);
    assert!(ledger.release("nan").unwrap().is_none());
    let left: i64 = ledger.conn.query_row("SELECT count(*) FROM events", [], |row| row.get(0)).unwrap();
    assert_eq!(left, 0);
    assert!(ledger.remove_release("nan").unwrap_err().to_string().contains("no release"));
    assert!(ledger.add_release(&release("nan", "bbb")).is_ok());
}

#[test]
fn reports_read_a_ledger_without_writing_it_and_errors_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nines.db");
    let mut ledger = Ledger::open(&path).unwrap();
    let r = ledger.add_release(&release("v1", "aaa")).unwrap();
    ledger.record_run(r.id, &run("closed/straight/3", Outcome::Pass)).unwrap();
    ledger.conn.execute("UPDATE runs SET outcome = 'banana'", []).unwrap();
    drop(ledger);
    let before = std::fs::read(&path).unwrap();
    let read = Ledger::open_read_only(&path).unwrap();
    let err = read.runs(r.id).unwrap_err().to_string();
    assert!(err.contains("nines.db") && err.contains("runs, row") && err.contains("banana"), "{err}");
    drop(read);
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was written");
    // A dropped table is reported, never recreated.
    Ledger::open(&path).unwrap().conn.execute_batch("DROP TABLE metrics;").unwrap();
    let err = Ledger::open_read_only(&path).err().unwrap().to_string();
    assert!(err.contains("nines.db") && err.contains("`metrics` is missing"), "{err}");
    assert!(Ledger::open_read_only(&dir.path().join("none.db")).is_err());
}

#[test]
fn shards_merge() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Ledger::open(&dir.path().join("a.db")).unwrap();
    let mut b = Ledger::open(&dir.path().join("b.db")).unwrap();
    let ra = a.add_release(&release("v1", "aaa")).unwrap();
    let rb = b.add_release(&release("v1", "aaa")).unwrap();
    a.record_run(ra.id, &run("closed/straight/0", Outcome::Pass)).unwrap();
    b.record_run(rb.id, &run("closed/straight/1", Outcome::Fail)).unwrap();
    b.record_run(rb.id, &run("closed/straight/0", Outcome::Pass)).unwrap();
    let mut all = Ledger::open(&dir.path().join("all.db")).unwrap();
    assert_eq!(all.merge(&a).unwrap(), (1, 0));
    assert_eq!(all.merge(&b).unwrap(), (1, 1));
    let v1 = all.release("v1").unwrap().unwrap();
    assert_eq!(all.runs(v1.id).unwrap().len(), 2);
    let other = Ledger::open(&dir.path().join("other.db")).unwrap();
    other.add_release(&release("v1", "ccc")).unwrap();
    assert!(all.merge(&other).is_err(), "a different model under the same name is refused");
}

#[test]
fn a_ledger_of_the_first_schema_is_upgraded_and_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // Version 1 had no seen_in_training column.
        let conn = Connection::open(&path).unwrap();
        let v1 = SCHEMA.replace("    seen_in_training INTEGER NOT NULL DEFAULT 0,\n", "");
        assert_ne!(v1, SCHEMA);
        conn.execute_batch(&v1).unwrap();
        conn.execute_batch("PRAGMA user_version = 1;").unwrap();
        conn.execute(
            "INSERT INTO releases (name, created_at, suite, suite_digest, policy, tool_version)
             VALUES ('old', 't', 'small', 's', 'expert', '0.1.0')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO runs (release_id, key, kind, family, seed, must_pass, outcome, km, hours)
             VALUES (1, 'closed/straight/0', 'closed', 'straight', 0, 0, 'fail', 0.1, 0.01)",
            [],
        )
        .unwrap();
    }
    let mut ledger = Ledger::open(&path).unwrap();
    let old = ledger.release("old").unwrap().unwrap();
    let runs = ledger.runs(old.id).unwrap();
    assert_eq!(runs.len(), 1, "the recorded run is kept");
    assert_eq!(runs[0].outcome, Outcome::Fail);
    assert!(!runs[0].seen_in_training);
    let version: i64 = ledger.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let seen = RunRecord { seen_in_training: true, ..run("closed/straight/3", Outcome::Pass) };
    let new = ledger.add_release(&release("new", "aaa")).unwrap();
    ledger.record_run(new.id, &seen).unwrap();
    assert_eq!(ledger.runs(new.id).unwrap(), vec![seen], "the mark round-trips");
}

#[test]
fn a_file_that_is_not_a_ledger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let notes = "hello, this is not SQLite at all, just some text padding it out";
    std::fs::write(&path, notes).unwrap();
    let err = format!("{:#}", Ledger::open(&path).err().unwrap());
    assert!(err.contains("notes.db"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), notes, "left as it was");
    assert!(Ledger::open_existing(&dir.path().join("none.db")).is_err());
}
