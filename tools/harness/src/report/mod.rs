//! `nines report` and `nines gate`: the ledger's runs turned into nines
//! (DESIGN.md section 6). Per release and per family: runs, failures by
//! category, the failure rate, its one-sided 95% Clopper-Pearson upper
//! bound, demonstrated nines = -log10(bound), and Poisson upper bounds per
//! km and per hour; every failure with the command that replays it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::ledger::{Ledger, Outcome, Release, RunRecord};
use super::stats::{clopper_pearson_upper, nines, poisson_rate_upper};
use crate::Result;
use nines_onboard::runtime;

mod gate;
mod html;
pub use gate::{GateLine, Verdict, gate, judge};
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
    /// "N runs, K failures, rate, bound, nines; km, h: per-km and per-hour bounds",
    /// for the text and HTML reports.
    #[must_use]
    pub fn line(&self) -> String {
        format!(
            "{} runs, {} failures, rate {:.4}, 95% upper bound {:.5}, {:.2} nines; {:.1} km, {:.2} h: <= {} failures/km, <= {} failures/h",
            self.runs,
            self.failures,
            self.failure_rate,
            self.upper_bound,
            self.nines,
            self.km,
            self.hours,
            rate(self.per_km_upper),
            rate(self.per_hour_upper)
        )
    }

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
            "  {}{}",
            f.line(),
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

#[cfg(test)]
mod tests;
