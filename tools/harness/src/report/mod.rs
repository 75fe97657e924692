//! `nines report` and `nines gate`: the ledger's runs turned into nines
//! (DESIGN.md section 6). Per release and per family: runs, failures by
//! category, the failure rate, its one-sided 95% Clopper-Pearson upper
//! bound, demonstrated nines = -log10(bound), and Poisson upper bounds per
//! km and per hour; every failure with the command that replays it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::ledger::{Ledger, Outcome, Release, RunRecord};
use super::stats::{clopper_pearson_upper, conditional_binomial_p, nines, poisson_rate_upper};
use crate::Result;
use nines_onboard::runtime;

mod html;
pub use html::{chart_svg, html};

/// One-sided confidence of every bound: 95%.
pub const ALPHA: f64 = 0.05;

/// The figures of a set of runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Runs (skipped ones not counted).
    pub runs: u64,
    /// Failed runs.
    pub failures: u64,
    /// failures / runs.
    pub failure_rate: f64,
    /// One-sided 95% Clopper-Pearson upper bound on the failure probability.
    pub upper_bound: f64,
    /// -log10(upper_bound).
    pub nines: f64,
    /// Distance driven, km.
    pub km: f64,
    /// Time driven, h.
    pub hours: f64,
    /// One-sided 95% Poisson upper bound on failures per km.
    pub per_km_upper: f64,
    /// One-sided 95% Poisson upper bound on failures per hour.
    pub per_hour_upper: f64,
    /// Failed runs by the category of their first failure.
    pub by_category: BTreeMap<String, u64>,
}

impl Figures {
    /// Figures of `runs` (skipped runs are left out).
    #[must_use]
    pub fn of<'a>(runs: impl IntoIterator<Item = &'a RunRecord>) -> Self {
        let (mut n, mut k, mut km, mut hours) = (0u64, 0u64, 0.0, 0.0);
        let mut by_category = BTreeMap::new();
        for run in runs.into_iter().filter(|r| r.outcome != Outcome::Skipped) {
            n += 1;
            km += run.km;
            hours += run.hours;
            if run.outcome == Outcome::Fail {
                k += 1;
                *by_category.entry(run.category.clone().unwrap_or_else(|| "unknown".into())).or_insert(0) +=
                    1;
            }
        }
        let upper_bound = clopper_pearson_upper(k, n, ALPHA);
        Self {
            runs: n,
            failures: k,
            failure_rate: if n > 0 { k as f64 / n as f64 } else { 0.0 },
            upper_bound,
            nines: nines(upper_bound),
            km,
            hours,
            per_km_upper: poisson_rate_upper(k, km, ALPHA),
            per_hour_upper: poisson_rate_upper(k, hours, ALPHA),
            by_category,
        }
    }
}

/// One family of a release.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyReport {
    /// Family (closed loop) or `open:<drive>`.
    pub family: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// `closed` or `open`.
    pub kind: String,
    /// Its runs the release skipped (open-loop entries under the expert):
    /// a family with runs 0 and skipped > 0 was skipped, not passed.
    pub skipped: u64,
}

impl FamilyReport {
    /// Every run of the family was skipped: it shows as "skipped".
    #[must_use]
    pub fn was_skipped(&self) -> bool {
        self.figures.runs == 0 && self.skipped > 0
    }
}

/// A release's must-pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MustPass {
    /// Must-pass runs (seen in training included: a must-pass run is never excused).
    pub runs: u64,
    /// How many failed.
    pub failures: u64,
}

/// The gate's verdict on a release, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GateLine {
    /// The release it was judged against.
    pub baseline: String,
    /// No reason to fail it.
    pub passed: bool,
    /// One-sided p-value of the conditional binomial test.
    pub p_value: f64,
    /// Why it fails (empty: it passes).
    pub reasons: Vec<String>,
    /// Things worth knowing that do not fail it.
    pub warnings: Vec<String>,
}

/// A failed run.
#[derive(Debug, Clone, Serialize)]
pub struct FailureLine {
    /// Run key.
    pub run: String,
    /// First failure's category.
    pub category: String,
    /// When, s into the run.
    pub time_s: f64,
    /// What happened.
    pub detail: String,
    /// Whether the run was must-pass.
    pub must_pass: bool,
    /// The command that replays it.
    pub replay: Option<String>,
    /// The model trained on the run's scenario (counted apart).
    pub seen_in_training: bool,
}

/// How long the model took per frame in a release's runs, as measured on
/// the machine that ran the eval. Performance only: lockstep runs judge
/// the deadline on `[safety] lockstep_latency_ms`, never on these times, so
/// a slow model is flagged here instead of failing runs at random.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferenceTiming {
    /// Runs that measured it (a drive's open-loop windows count once).
    pub runs: u64,
    /// Median of the runs' median preprocess + inference time, ms
    /// (`nines_onboard::runtime::percentile`).
    pub p50_ms: f64,
    /// 99th percentile of the runs' 99th percentiles, ms.
    pub p99_ms: f64,
    /// The config's inference deadline, ms.
    pub deadline_ms: Option<f64>,
    /// p99 beyond the deadline: on a robot like the eval machine this model
    /// would trip the deadline check.
    pub slow: bool,
}

impl InferenceTiming {
    /// From the runs' `inference_p50_ms`, `inference_p99_ms` and
    /// `inference_deadline_ms` metrics; `None` when no run has them (the expert).
    #[must_use]
    pub fn of(runs: &[RunRecord]) -> Option<Self> {
        let metric = |run: &RunRecord, name: &str| {
            run.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v).filter(|v| v.is_finite())
        };
        let mut p50: Vec<f64> = runs.iter().filter_map(|r| metric(r, "inference_p50_ms")).collect();
        let mut p99: Vec<f64> = runs.iter().filter_map(|r| metric(r, "inference_p99_ms")).collect();
        if p50.is_empty() || p99.is_empty() {
            return None;
        }
        let deadline_ms = runs.iter().find_map(|r| metric(r, "inference_deadline_ms"));
        let p99_ms = runtime::percentile(&mut p99, 0.99);
        Some(Self {
            runs: p50.len() as u64,
            p50_ms: runtime::percentile(&mut p50, 0.5),
            p99_ms,
            deadline_ms,
            slow: deadline_ms.is_some_and(|d| p99_ms > d),
        })
    }
}

/// One release.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    /// Release name.
    pub release: String,
    /// `model` or `expert`.
    pub policy: String,
    /// Model digest.
    pub model_digest: Option<String>,
    /// Suite.
    pub suite: String,
    /// When it was evaluated.
    pub created_at: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// Runs skipped (open-loop entries under the expert).
    pub skipped: u64,
    /// Closed-loop runs alone (seen in training left out): releases compare on these.
    pub closed_loop: Figures,
    /// Open-loop runs alone (seen in training left out).
    pub open_loop: Figures,
    /// Must-pass runs and their failures.
    pub must_pass: MustPass,
    /// The gate against the release before it (or the report's named
    /// baseline); `None` for the first release.
    pub gate: Option<GateLine>,
    /// The model's measured inference time (none for the expert).
    pub inference: Option<InferenceTiming>,
    /// Per family.
    pub families: Vec<FamilyReport>,
    /// Runs whose scenario the model trained on, counted apart: they are
    /// in neither the release's figures nor its families'. `None` if none.
    pub seen_in_training: Option<Figures>,
    /// Every failure.
    pub failed_runs: Vec<FailureLine>,
}

impl ReleaseReport {
    /// The report of one release's runs.
    #[must_use]
    pub fn of(release: &Release, runs: &[RunRecord]) -> Self {
        let (seen, unseen): (Vec<&RunRecord>, Vec<&RunRecord>) =
            runs.iter().partition(|r| r.seen_in_training);
        let mut by_family: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
        for run in &unseen {
            by_family.entry(run.family.as_str()).or_default().push(run);
        }
        Self {
            release: release.name.clone(),
            policy: release.policy.clone(),
            model_digest: release.model_digest.clone(),
            suite: release.suite.clone(),
            created_at: release.created_at.clone(),
            figures: Figures::of(unseen.iter().copied()),
            skipped: runs.iter().filter(|r| r.outcome == Outcome::Skipped).count() as u64,
            inference: InferenceTiming::of(runs),
            closed_loop: Figures::of(unseen.iter().copied().filter(|r| r.kind != "open")),
            open_loop: Figures::of(unseen.iter().copied().filter(|r| r.kind == "open")),
            must_pass: MustPass {
                runs: runs.iter().filter(|r| r.must_pass).count() as u64,
                failures: runs.iter().filter(|r| r.must_pass && r.outcome == Outcome::Fail).count() as u64,
            },
            gate: None,
            families: by_family
                .into_iter()
                .map(|(family, runs)| FamilyReport {
                    family: family.into(),
                    figures: Figures::of(runs.iter().copied()),
                    kind: if runs.iter().any(|r| r.kind == "open") { "open" } else { "closed" }.into(),
                    skipped: runs.iter().filter(|r| r.outcome == Outcome::Skipped).count() as u64,
                })
                .collect(),
            seen_in_training: (!seen.is_empty()).then(|| Figures::of(seen.iter().copied())),
            failed_runs: runs
                .iter()
                .filter(|r| r.outcome == Outcome::Fail)
                .map(|r| {
                    let first = r.events.first();
                    FailureLine {
                        run: r.key.clone(),
                        category: r.category.clone().unwrap_or_default(),
                        time_s: first.map_or(0.0, |e| e.time_s),
                        detail: first.map_or_else(String::new, |e| e.detail.clone()),
                        must_pass: r.must_pass,
                        replay: r.replay.clone(),
                        seen_in_training: r.seen_in_training,
                    }
                })
                .collect(),
        }
    }
}

impl ReleaseReport {
    /// "closed loop: ...; open loop: ..." with each kind's own figures, or "skipped".
    #[must_use]
    pub fn kinds_line(&self) -> String {
        let open_skipped = self.families.iter().any(|f| f.kind == "open" && f.was_skipped());
        let kind = |name: &str, f: &Figures, skipped: bool| {
            if f.runs == 0 && skipped {
                format!("{name}: skipped")
            } else if f.runs == 0 {
                format!("{name}: none")
            } else {
                format!("{name}: {} runs, {} failures, {:.2} nines", f.runs, f.failures, f.nines)
            }
        };
        format!(
            "{}; {}",
            kind("closed loop", &self.closed_loop, false),
            kind("open loop", &self.open_loop, open_skipped)
        )
    }

    /// "must pass: 1 of 1 passed", if the suite has must-pass runs.
    #[must_use]
    pub fn must_pass_line(&self) -> Option<String> {
        let m = self.must_pass;
        (m.runs > 0).then(|| {
            format!(
                "must pass: {} of {} passed{}",
                m.runs - m.failures,
                m.runs,
                if m.failures > 0 { " (FAILS THE GATE)" } else { "" }
            )
        })
    }

    /// The line on runs seen in training, if the release has any.
    #[must_use]
    pub fn seen_line(&self) -> Option<String> {
        self.seen_in_training.as_ref().map(|f| {
            format!(
                "seen in training: {} runs, {} failures, counted apart (the model trained on their scenarios)",
                f.runs, f.failures
            )
        })
    }
}

/// Every release in the ledger, oldest first, each gated against the one before.
pub fn build(ledger: &Ledger) -> Result<Vec<ReleaseReport>> {
    let mut reports: Vec<ReleaseReport> = ledger
        .releases()?
        .iter()
        .map(|r| Ok(ReleaseReport::of(r, &ledger.runs(r.id)?)))
        .collect::<Result<_>>()?;
    judge(&mut reports, None);
    Ok(reports)
}

/// Gates every release against `baseline` (a release in `reports`), or,
/// with none, each against the release before it. The baseline itself and
/// the first release get no verdict. Returns false if `baseline` is not in
/// `reports`.
pub fn judge(reports: &mut [ReleaseReport], baseline: Option<&str>) -> bool {
    let named = match baseline {
        Some(name) => match reports.iter().find(|r| r.release == name) {
            Some(r) => Some(r.clone()),
            None => return false,
        },
        None => None,
    };
    for i in 0..reports.len() {
        let base = match &named {
            Some(b) if b.release == reports[i].release => None,
            Some(b) => Some(b.clone()),
            None => i.checked_sub(1).map(|j| reports[j].clone()),
        };
        reports[i].gate = base.map(|b| {
            let v = gate(&b, &reports[i], ALPHA);
            GateLine {
                baseline: b.release,
                passed: v.reasons.is_empty(),
                p_value: v.p_value,
                reasons: v.reasons,
                warnings: v.warnings,
            }
        });
    }
    true
}

/// A release's failures grouped by family and first-failure category,
/// the largest group first (ties: family, then category, by name).
#[must_use]
pub fn failure_groups(report: &ReleaseReport) -> Vec<((&str, &str), Vec<&FailureLine>)> {
    let mut groups: BTreeMap<(&str, &str), Vec<&FailureLine>> = BTreeMap::new();
    for fail in &report.failed_runs {
        groups.entry((family_of(&fail.run), fail.category.as_str())).or_default().push(fail);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    groups
}

/// The family of a run key: `closed/<family>/<seed>` or `open/<drive>/<window>`.
fn family_of(key: &str) -> &str {
    let mut parts = key.split('/');
    match (parts.next(), parts.next()) {
        (Some("open"), Some(_)) => key.rsplit_once('/').map_or(key, |(head, _)| head),
        (Some(_), Some(family)) => family,
        _ => key,
    }
}

/// The gate's line for the text and HTML reports.
impl GateLine {
    /// "gate against B: PASS (p = 0.43)" or "... FAIL: reasons".
    #[must_use]
    pub fn line(&self) -> String {
        if self.passed {
            format!("gate against {}: PASS (p = {:.4}, not significantly worse)", self.baseline, self.p_value)
        } else {
            format!(
                "gate against {}: FAIL (p = {:.4}): {}",
                self.baseline,
                self.p_value,
                self.reasons.join("; ")
            )
        }
    }
}

impl InferenceTiming {
    /// One line for the text and HTML reports.
    #[must_use]
    pub fn line(&self) -> String {
        let deadline = self.deadline_ms.map_or_else(String::new, |d| format!(", deadline {d:.0} ms"));
        let flag = if self.slow {
            ": SLOW, p99 beyond the deadline; on a robot like this machine the runtime would stop"
        } else {
            ""
        };
        format!(
            "inference p50 {:.2} ms, p99 {:.2} ms over {} runs (measured on the eval machine{deadline}){flag}",
            self.p50_ms, self.p99_ms, self.runs
        )
    }
}

/// " 0123456789ab" of "sha256:0123456789abcdef...".
fn short_digest(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!(" {}", &hex[..12.min(hex.len())])
}

pub(super) fn rate(x: f64) -> String {
    if x.is_finite() { format!("{x:.3}") } else { "-".into() }
}

/// The plain-text report.
#[must_use]
pub fn text(reports: &[ReleaseReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let f = &r.figures;
        let _ = writeln!(
            out,
            "release {} ({}{}, suite {}, {})",
            r.release,
            r.policy,
            r.model_digest.as_deref().map(short_digest).unwrap_or_default(),
            r.suite,
            r.created_at
        );
        let _ = writeln!(
            out,
            "  {} runs, {} failures, rate {:.4}, 95% upper bound {:.5}, {:.2} nines; {:.1} km, {:.2} h: <= {} failures/km, <= {} failures/h{}",
            f.runs,
            f.failures,
            f.failure_rate,
            f.upper_bound,
            f.nines,
            f.km,
            f.hours,
            rate(f.per_km_upper),
            rate(f.per_hour_upper),
            if r.skipped > 0 { format!(" ({} skipped)", r.skipped) } else { String::new() }
        );
        let _ = writeln!(out, "  {}", r.kinds_line());
        if let Some(line) = r.must_pass_line() {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(gate) = &r.gate {
            let _ = writeln!(out, "  {}", gate.line());
        }
        if let Some(line) = r.inference.as_ref().map(InferenceTiming::line) {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(line) = r.seen_line() {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(
            out,
            "  {:<30} {:>5} {:>5} {:>8} {:>9} {:>6}  failures by category",
            "family", "runs", "fail", "rate", "upper", "nines"
        );
        for fam in &r.families {
            let g = &fam.figures;
            if g.runs == 0 {
                let _ = writeln!(out, "  {:<30} skipped", fam.family);
                continue;
            }
            let categories: Vec<String> = g.by_category.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let _ = writeln!(
                out,
                "  {:<30} {:>5} {:>5} {:>8.4} {:>9.5} {:>6.2}  {}",
                fam.family,
                g.runs,
                g.failures,
                g.failure_rate,
                g.upper_bound,
                g.nines,
                categories.join(", ")
            );
        }
        for ((family, category), fails) in failure_groups(r) {
            let _ = writeln!(out, "  {family}: {} {category}", fails.len());
            for fail in fails {
                let _ = writeln!(
                    out,
                    "  FAIL {}{}{} at {:.1} s: {} ({})",
                    fail.run,
                    if fail.must_pass { " [must pass]" } else { "" },
                    if fail.seen_in_training { " [seen in training]" } else { "" },
                    fail.time_s,
                    fail.category,
                    fail.detail
                );
                if let Some(replay) = &fail.replay {
                    let _ = writeln!(out, "       replay: {replay}");
                }
            }
        }
        out.push('\n');
    }
    out
}

/// The `--json` report: `{"releases": [...]}`, fields in the order above.
pub fn json_text(reports: &[ReleaseReport]) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct Out<'a> {
        releases: &'a [ReleaseReport],
    }
    serde_json::to_string_pretty(&Out { releases: reports })
}

/// The gate's verdict on a candidate against its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Baseline failures and runs.
    pub baseline: (u64, u64),
    /// Candidate failures and runs.
    pub candidate: (u64, u64),
    /// One-sided p-value of the conditional binomial test.
    pub p_value: f64,
    /// Why it fails (empty: it passes).
    pub reasons: Vec<String>,
    /// Things worth knowing that do not fail it.
    pub warnings: Vec<String>,
}

/// Compares `candidate` with `baseline`: it fails if its failure rate is
/// significantly higher (conditional binomial test on k_B given k_A + k_B,
/// at `alpha`) or if a must-pass run failed.
#[must_use]
pub fn gate(baseline: &ReleaseReport, candidate: &ReleaseReport, alpha: f64) -> Verdict {
    let mut warnings = Vec::new();
    // Releases compare on the kinds of runs both ran: the expert skips
    // open-loop entries, so against it only closed-loop runs count.
    let (a, b) = if baseline.open_loop.runs == 0 || candidate.open_loop.runs == 0 {
        if baseline.open_loop.runs + candidate.open_loop.runs > 0 {
            warnings
                .push("only closed-loop runs are compared: one release ran no open-loop entry".to_string());
        }
        (&baseline.closed_loop, &candidate.closed_loop)
    } else {
        (&baseline.figures, &candidate.figures)
    };
    let p_value = conditional_binomial_p(a.failures, a.runs, b.failures, b.runs);
    let mut reasons = Vec::new();
    if b.runs == 0 {
        reasons.push(format!("{} has no runs to judge", candidate.release));
    }
    if p_value < alpha {
        reasons.push(format!(
            "{}'s failure rate {}/{} is significantly higher than {}'s {}/{} (conditional binomial test, p = {p_value:.4} < {alpha})",
            candidate.release, b.failures, b.runs, baseline.release, a.failures, a.runs
        ));
    }
    let must: Vec<&FailureLine> = candidate.failed_runs.iter().filter(|f| f.must_pass).collect();
    for fail in must.iter().take(5) {
        reasons.push(format!("must-pass run {} failed: {} ({})", fail.run, fail.category, fail.detail));
    }
    if must.len() > 5 {
        reasons.push(format!("{} more must-pass runs failed (nines report lists them)", must.len() - 5));
    }
    if baseline.suite != candidate.suite {
        warnings.push(format!(
            "the releases ran different suites ({} and {}): the comparison is of failure rates only",
            baseline.suite, candidate.suite
        ));
    }
    Verdict { baseline: (a.failures, a.runs), candidate: (b.failures, b.runs), p_value, reasons, warnings }
}

#[cfg(test)]
mod tests {
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
                    vec![RunEvent {
                        time_s: 3.0,
                        category: "off_road".into(),
                        detail: "left".into(),
                        value: 1.0,
                    }]
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
                        c.attribute("data-release") == Some(release)
                            && c.attribute("data-family") == Some(column)
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
        let html =
            html(&[report.clone(), ReleaseReport::of(&release("v2"), &runs("straight", 10, 0))]).unwrap();
        assert!(
            html.contains("<svg") && html.contains("v2") && html.contains("nines replay d/straight-0.mcap")
        );
    }
}
