//! The march of nines as a user runs it: eval, the ledger, report, gate,
//! shards, replaying a failure, and the demo.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nines(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nines")).args(args).output().expect("running nines")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn ok(args: &[&str]) -> String {
    let out = nines(args);
    assert!(out.status.success(), "nines {}:\n{}", args.join(" "), text(&out));
    text(&out)
}

fn suite(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites").join(name)
}

fn report_json(ledger: &Path) -> serde_json::Value {
    let out = nines(&["report", "--json", "--ledger", ledger.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn release<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["releases"].as_array().unwrap().iter().find(|r| r["release"] == name).unwrap()
}

#[test]
fn the_expert_passes_the_small_suite_and_shards_merge_to_the_same_figures() {
    let dir = tempfile::tempdir().unwrap();
    let small = suite("small.toml");
    let whole = dir.path().join("whole.db");
    let common = ["--policy", "expert", "--suite", small.to_str().unwrap(), "--release", "expert"];
    ok(&[&["eval"][..], &common, &["--ledger", whole.to_str().unwrap()]].concat());
    let json = report_json(&whole);
    let expert = release(&json, "expert");
    assert_eq!(expert["runs"], 19, "{expert}");
    assert_eq!(expert["failures"], 0, "the expert must pass every closed-loop run: {expert}");
    assert_eq!(expert["skipped"], 1, "the open-loop entry is skipped under the expert");
    assert!((expert["upper_bound"].as_f64().unwrap() - 0.1458).abs() < 1e-3, "{expert}");

    // The same suite as two shards, merged.
    let shards: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("shard-{i}.db"))).collect();
    for (i, shard) in shards.iter().enumerate() {
        let slice = format!("{i}/2");
        ok(&[&["eval"][..], &common, &["--ledger", shard.to_str().unwrap(), "--shard", &slice]].concat());
    }
    let merged = dir.path().join("merged.db");
    ok(&[
        "eval",
        "merge",
        "--into",
        merged.to_str().unwrap(),
        shards[0].to_str().unwrap(),
        shards[1].to_str().unwrap(),
    ]);
    let a = release(&json, "expert");
    let merged_json = report_json(&merged);
    let b = release(&merged_json, "expert");
    for field in ["runs", "failures", "skipped", "upper_bound", "nines"] {
        assert_eq!(a[field], b[field], "{field}");
    }
    // Resuming records nothing twice.
    let again = ok(&[&["eval"][..], &common, &["--ledger", whole.to_str().unwrap()]].concat());
    assert!(again.contains("0 runs recorded") && again.contains("20 were already there"), "{again}");
    assert_eq!(release(&report_json(&whole), "expert")["runs"], 19);
}

#[test]
fn a_worse_model_fails_the_gate_and_its_failures_replay() {
    let dir = tempfile::tempdir().unwrap();
    // Curved roads with a must-pass entry: an untrained network does not follow them.
    let suite = dir.path().join("curves.toml");
    std::fs::write(
        &suite,
        "name = \"curves\"\n[camera]\nwidth = 256\nheight = 128\n\
         [[closed_loop]]\nfamilies = [\"curves\"]\nseeds = \"0..8\"\nduration_s = 15.0\nmust_pass = true\n",
    )
    .unwrap();
    let model = dir.path().join("untrained.onnx");
    let contract = nines_datasets::contract::ModelContract::default();
    nines_offboard::export::export_untrained("tiny", &contract, 7, &model).unwrap();
    let ledger = dir.path().join("nines.db");
    let (s, l) = (suite.to_str().unwrap(), ledger.to_str().unwrap());
    ok(&["eval", "--policy", "expert", "--suite", s, "--release", "expert", "--ledger", l]);
    let out = ok(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--suite",
        s,
        "--release",
        "untrained",
        "--ledger",
        l,
    ]);
    assert!(out.contains("failed runs' drives"), "{out}");
    let json = report_json(&ledger);
    let untrained = release(&json, "untrained");
    let failures = untrained["failures"].as_u64().unwrap();
    // 5 of 8 against the expert's 0 of 8 is significant at 0.05 (0.5^5 = 0.031).
    assert!(failures >= 5, "an untrained network should leave curved lanes: {untrained}");
    let failed = untrained["failed_runs"].as_array().unwrap();
    assert_eq!(failed.len() as u64, failures);

    // The gate: the expert against itself passes; the untrained model fails it.
    let pass = ok(&["gate", "--ledger", l, "--baseline", "expert", "--candidate", "expert"]);
    assert!(pass.contains("gate: PASS"), "{pass}");
    let gate = nines(&["gate", "--ledger", l, "--baseline", "expert", "--candidate", "untrained"]);
    assert!(!gate.status.success());
    assert!(
        text(&gate).contains("significantly higher") && text(&gate).contains("must-pass run closed/curves/"),
        "{}",
        text(&gate)
    );

    // A failed run's drive replays with `nines replay`, with the model beside it.
    let replay = failed[0]["replay"].as_str().unwrap();
    let mut words = replay.split_whitespace();
    assert_eq!((words.next(), words.next()), (Some("nines"), Some("replay")), "{replay}");
    let kept = words.next().unwrap();
    assert!(Path::new(kept).exists(), "{kept}");
    // The kept drive says who drove: the expert until the runtime engaged, then the model.
    let inspected: serde_json::Value = serde_json::from_str(&ok(&["inspect", kept, "--json"])).unwrap();
    let seconds = &inspected["control"]["seconds"];
    assert!(
        seconds["human"].as_f64().unwrap() > 0.0 && seconds["model"].as_f64().unwrap() > 0.0,
        "{seconds}"
    );
    let rrd = dir.path().join("failure.rrd");
    ok(&["replay", kept, "--model", model.to_str().unwrap(), "--save", rrd.to_str().unwrap()]);
    assert!(std::fs::metadata(&rrd).unwrap().len() > 100_000);

    // The HTML report has the chart and every failure's replay command.
    let html = dir.path().join("report.html");
    ok(&["report", "--ledger", l, "--html", html.to_str().unwrap()]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains(kept), "the report names the kept drive");
}

#[test]
fn eval_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"bad\"\n[[closed_loop]]\nfamilies = [\"mars\"]\nseeds = \"0..2\"\n")
        .unwrap();
    let out = nines(&["eval", "--policy", "expert", "--suite", bad.to_str().unwrap(), "--release", "x"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("bad.toml") && text(&out).contains("unknown family \"mars\""),
        "{}",
        text(&out)
    );
    let out = nines(&["report", "--ledger", dir.path().join("none.db").to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("no such ledger"), "{}", text(&out));
    let small = suite("small.toml");
    let out =
        nines(&["eval", "--model", "nowhere.onnx", "--suite", small.to_str().unwrap(), "--release", "x"]);
    assert!(!out.status.success() && text(&out).contains("nowhere.onnx: no such model"), "{}", text(&out));
}

#[test]
fn the_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&["demo", "--quick", "--out", dir.path().to_str().unwrap()]);
    for step in ["[1/7]", "[4/7]", "[7/7]", "demo done", "nines replay"] {
        assert!(out.contains(step), "missing {step} in\n{out}");
    }
    let json = report_json(&dir.path().join("nines.db"));
    let releases = json["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 2, "{json}");
    assert_eq!(release(&json, "expert")["failures"], 0);
    // Two closed-loop runs, a simulated drive and a logged drive (open loop).
    let model = releases.iter().find(|r| r["policy"] == "model").unwrap();
    assert_eq!(model["runs"], 4, "{model}");
    let families: Vec<&str> =
        model["families"].as_array().unwrap().iter().map(|f| f["family"].as_str().unwrap()).collect();
    assert!(families.contains(&"open:lead_brake-1000000"), "{families:?}");
    assert!(std::fs::read_to_string(dir.path().join("report.html")).unwrap().contains("<svg"));
}
