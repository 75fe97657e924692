//! Tests of `report`.

use super::*;
use crate::ledger::RunEvent;

fn runs(family: &str, n: usize, failures: usize) -> Vec<RunRecord> {
    (0..n)
        .map(|i| RunRecord {
            key: format!("closed/{family}/{i}"),
            kind: "closed".into(),
            family: family.into(),
            seed: Some(i as u64),
            drive: None,
            must_pass: false,
            outcome: if i < failures { Outcome::Fail } else { Outcome::Pass },
            category: (i < failures).then(|| "off_road".into()),
            km: 0.25,
            hours: 30.0 / 3600.0,
            kept_drive: None,
            replay: (i < failures).then(|| format!("nines replay d/{family}-{i}.mcap")),
            events: if i < failures {
                vec![RunEvent { time_s: 3.0, category: "off_road".into(), detail: "left".into(), value: 1.0 }]
            } else {
                Vec::new()
            },
            metrics: Vec::new(),
            seen_in_training: false,
        })
        .collect()
}

fn release(name: &str) -> Release {
    Release {
        id: 1,
        name: name.into(),
        created_at: "2026-11-23T00:00:00Z".into(),
        suite: "standard".into(),
        suite_digest: "s".into(),
        policy: "model".into(),
        model_path: None,
        model_digest: Some("0123456789abcdef".into()),
        contract: None,
        tool_version: "0.1.0".into(),
    }
}

#[test]
fn figures_match_the_known_values() {
    let f = Figures::of(&runs("straight", 220, 0));
    assert!((f.upper_bound - 0.0135).abs() < 1e-4, "{}", f.upper_bound);
    let f = Figures::of(&runs("straight", 3000, 0));
    assert!((f.nines - 3.0).abs() < 0.005, "{}", f.nines);
    let f = Figures::of(&runs("straight", 3000, 1));
    assert!((f.upper_bound - 0.00158).abs() < 1e-5, "{}", f.upper_bound);
    assert_eq!(f.by_category["off_road"], 1);
    // 1 failure in 750 km: the Poisson bound is 4.744 / 750.
    assert!((f.per_km_upper - 4.744 / 750.0).abs() < 1e-5, "{}", f.per_km_upper);
}

#[test]
fn inference_times_are_summarised_and_a_slow_model_is_flagged() {
    let timed = |p50: &[f64], p99: &[f64]| {
        let mut all = runs("straight", p50.len(), 0);
        for (run, (a, b)) in all.iter_mut().zip(p50.iter().zip(p99)) {
            run.metrics = vec![
                ("inference_p50_ms".into(), *a),
                ("inference_p99_ms".into(), *b),
                ("inference_deadline_ms".into(), 80.0),
            ];
        }
        ReleaseReport::of(&release("m"), &all)
    };
    let fast = timed(&[2.0, 3.0, 4.0], &[5.0, 9.0, 7.0]).inference.unwrap();
    assert_eq!((fast.runs, fast.p50_ms, fast.p99_ms, fast.slow), (3, 3.0, 9.0, false));
    assert!(fast.line().contains("p50 3.00 ms, p99 9.00 ms") && !fast.line().contains("SLOW"));
    let slow = timed(&[40.0, 50.0], &[70.0, 95.0]).inference.unwrap();
    assert!(slow.slow && slow.line().contains("SLOW"), "{slow:?}");
    assert!(text(&[timed(&[40.0], &[95.0])]).contains("SLOW"));
    // The expert has no model to time.
    assert!(ReleaseReport::of(&release("e"), &runs("straight", 3, 0)).inference.is_none());
}

#[test]
fn runs_seen_in_training_are_counted_apart() {
    let mut all = runs("straight", 10, 3);
    for run in &mut all[..4] {
        run.seen_in_training = true;
    }
    let report = ReleaseReport::of(&release("leaky"), &all);
    // Seeds 0..4 were trained on (3 of them failed): the nines count seeds 4..10 only.
    assert_eq!((report.figures.runs, report.figures.failures), (6, 0));
    assert_eq!((report.families[0].figures.runs, report.families[0].figures.failures), (6, 0));
    let seen = report.seen_in_training.as_ref().unwrap();
    assert_eq!((seen.runs, seen.failures), (4, 3));
    let text = text(std::slice::from_ref(&report));
    assert!(text.contains("seen in training: 4 runs, 3 failures, counted apart"), "{text}");
    assert!(text.contains("FAIL closed/straight/0 [seen in training]"), "{text}");
    assert!(html(std::slice::from_ref(&report)).unwrap().contains("seen in training: 4 runs"));
    assert!(ReleaseReport::of(&release("clean"), &runs("straight", 3, 1)).seen_in_training.is_none());
}

#[test]
fn the_gate_flags_a_worse_candidate_and_a_must_pass_failure() {
    let base = ReleaseReport::of(&release("a"), &runs("straight", 1000, 1));
    let worse = ReleaseReport::of(&release("b"), &runs("straight", 1000, 10));
    let similar = ReleaseReport::of(&release("c"), &runs("straight", 1000, 2));
    let v = gate(&base, &worse, ALPHA);
    assert_eq!(v.reasons.len(), 1, "{v:?}");
    assert!(v.reasons[0].contains("significantly higher"));
    assert!(gate(&base, &similar, ALPHA).reasons.is_empty());
    let mut must = runs("straight", 1000, 1);
    must[0].must_pass = true;
    let v = gate(&base, &ReleaseReport::of(&release("d"), &must), ALPHA);
    assert!(v.reasons.iter().any(|r| r.contains("must-pass run closed/straight/0 failed")), "{v:?}");
}

fn open_runs(drive: &str, n: usize, skipped: bool) -> Vec<RunRecord> {
    let mut all = runs(&format!("open:{drive}"), n, 0);
    for (i, run) in all.iter_mut().enumerate() {
        run.key = format!("open/{drive}/{i}");
        run.kind = "open".into();
        run.seed = None;
        if skipped {
            run.outcome = Outcome::Skipped;
        }
    }
    all
}

/// The `<body>` of a report, parsed as XML.
fn body(html: &str) -> roxmltree::Document<'_> {
    let start = html.find("<body>").unwrap();
    let end = html.rfind("</body>").unwrap() + "</body>".len();
    roxmltree::Document::parse(&html[start..end]).unwrap()
}

#[test]
fn the_html_report_has_a_cell_and_a_panel_per_family_and_release_and_bounded_axes() {
    let mut a = runs("straight", 10, 2);
    a.extend(runs("curves", 10, 0));
    a.extend(open_runs("drive", 3, true));
    let mut b = runs("straight", 10, 1);
    b.extend(runs("curves", 10, 0));
    b.extend(open_runs("drive", 3, false));
    let mut reports = vec![ReleaseReport::of(&release("a"), &a), ReleaseReport::of(&release("b"), &b)];
    assert!(judge(&mut reports, None));
    let html = html(&reports).unwrap();
    let doc = body(&html);
    let columns = ["closed loop", "curves", "straight", "open:drive", "open loop"];
    let cells: Vec<_> =
        doc.descendants().filter(|n| n.has_tag_name("td") && n.has_attribute("data-family")).collect();
    assert_eq!(cells.len(), 2 * columns.len(), "one cell per release and column");
    for release in ["a", "b"] {
        for column in columns {
            let cell = cells
                .iter()
                .find(|c| {
                    c.attribute("data-release") == Some(release) && c.attribute("data-family") == Some(column)
                })
                .unwrap_or_else(|| panic!("no cell for {release} x {column}"));
            let text: String =
                cell.descendants().filter(roxmltree::Node::is_text).filter_map(|n| n.text()).collect();
            let skipped = release == "a" && column.starts_with("open");
            assert_eq!(text == "skipped", skipped, "{release} x {column}: {text}");
        }
    }
    // b is judged against a, and the verdict is in the table.
    assert!(html.contains("PASS vs a"), "{html}");
    // One panel per column a release ran, one dot per release that ran it, on a bounded axis.
    let panels: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("figure")).collect();
    assert_eq!(panels.len(), columns.len());
    for panel in &panels {
        let family = panel.attribute("data-family").unwrap();
        let top: f64 = panel.attribute("data-top").unwrap().parse().unwrap();
        // The highest value: b's closed loop, 1 failure in 20 observed (1.3 nines), up to a quarter.
        assert!((top - 1.5).abs() < 1e-9, "{family}: axis to {top}");
        let dots = panel.descendants().filter(|n| n.has_tag_name("circle")).count();
        assert_eq!(dots, if family.starts_with("open") { 1 } else { 2 }, "{family}");
        let ticks: Vec<f64> = panel
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            // y labels have two decimals; x labels are release numbers.
            .filter_map(|n| n.text().filter(|t| t.contains('.'))?.trim().parse::<f64>().ok())
            .collect();
        assert!(ticks.len() >= 3, "{family}: y labels {ticks:?}");
        assert!(ticks.iter().all(|t| *t <= top + 1e-9), "{family}: ticks {ticks:?} past {top}");
    }
    // Failures are grouped, the largest group first, each with its replay.
    let text = text(&reports);
    assert!(text.contains("straight: 2 off_road"), "{text}");
    assert!(text.contains("open loop: skipped") && text.contains("open loop: 3 runs"), "{text}");
    assert!(text.contains("gate against a: PASS"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&json_text(&reports).unwrap()).unwrap();
    assert_eq!(json["releases"][1]["gate"]["baseline"], "a");
    assert_eq!(json["releases"][0]["open_loop"]["runs"], 0);
    assert_eq!(json["releases"][0]["families"][1]["skipped"], 3);
}

#[test]
fn a_named_baseline_judges_every_other_release() {
    let mut reports = vec![
        ReleaseReport::of(&release("a"), &runs("straight", 100, 1)),
        ReleaseReport::of(&release("b"), &runs("straight", 100, 20)),
        ReleaseReport::of(&release("c"), &runs("straight", 100, 2)),
    ];
    assert!(!judge(&mut reports, Some("nope")));
    assert!(judge(&mut reports, Some("a")));
    assert!(reports[0].gate.is_none());
    assert!(!reports[1].gate.as_ref().unwrap().passed);
    let c = reports[2].gate.as_ref().unwrap();
    assert!(c.passed && c.baseline == "a", "{c:?}");
}

#[test]
fn reports_carry_every_failure_with_its_replay() {
    let mut all = runs("straight", 10, 2);
    all.extend(runs("curves", 5, 0));
    let report = ReleaseReport::of(&release("v1"), &all);
    assert_eq!(report.families.len(), 2);
    let text = text(std::slice::from_ref(&report));
    assert!(text.contains("replay: nines replay d/straight-1.mcap"), "{text}");
    let text_json = json_text(std::slice::from_ref(&report)).unwrap();
    assert!(
        text_json.find("\"release\"").unwrap() < text_json.find("\"runs\"").unwrap(),
        "release comes first"
    );
    let json: serde_json::Value = serde_json::from_str(&text_json).unwrap();
    assert_eq!(json["releases"][0]["runs"], 15);
    assert_eq!(json["releases"][0]["failures"], 2);
    assert_eq!(json["releases"][0]["families"][0]["family"], "curves");
    let html = html(&[report.clone(), ReleaseReport::of(&release("v2"), &runs("straight", 10, 0))]).unwrap();
    assert!(html.contains("<svg") && html.contains("v2") && html.contains("nines replay d/straight-0.mcap"));
}
