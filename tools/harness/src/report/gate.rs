//! The gate: a candidate release against its baseline (DESIGN.md section
//! 6), as `nines gate` runs it and as the report shows it per release.

use serde::Serialize;

use super::{ALPHA, FailureLine, ReleaseReport};
use crate::stats::conditional_binomial_p;

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
