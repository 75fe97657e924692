//! The nines maths (DESIGN.md section 6): one-sided Clopper-Pearson upper
//! bounds on a failure rate, demonstrated nines, Poisson upper bounds on
//! per-km and per-hour rates, and the gate's conditional binomial test.
//!
//! Written here rather than taken from a statistics crate: the ones on
//! crates.io that have the inverse beta and gamma functions bring their own
//! nalgebra version (a second heavy copy in the build) for four functions
//! that are a few dozen lines each. Every function is checked against known
//! values in the tests.

/// Regularized incomplete beta I_x(a, b), by its continued fraction
/// (modified Lentz), using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where
/// the fraction converges slowly.
#[must_use]
pub fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(1.0 - x, b, a);
    }
    let tiny = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    d = if d.abs() < tiny { tiny } else { d };
    d = 1.0 / d;
    let mut f = d;
    for m in 1..500 {
        let m = f64::from(m);
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = if d.abs() < tiny { tiny } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < tiny { tiny } else { c };
            d = 1.0 / d;
            f *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    (ln_front.exp() * f / a).clamp(0.0, 1.0)
}

/// Regularized lower incomplete gamma P(a, x), by its series below a + 1
/// and its continued fraction above.
#[must_use]
pub fn incomplete_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let ln_front = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        return (sum * ln_front.exp()).clamp(0.0, 1.0);
    }
    let tiny = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..1000 {
        let an = -f64::from(i) * (f64::from(i) - a);
        b += 2.0;
        d = an * d + b;
        d = if d.abs() < tiny { tiny } else { d };
        c = b + an / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-15 {
            break;
        }
    }
    (1.0 - ln_front.exp() * h).clamp(0.0, 1.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: ~1e-15 relative).
#[must_use]
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        sum += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The root of an increasing `f` on [lo, hi] where it crosses `target`.
fn bisect(f: impl Fn(f64) -> f64, target: f64, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * hi.max(1e-300) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// One-sided (1 - alpha) Clopper-Pearson upper bound on a failure
/// probability after `k` failures in `n` runs: the p at which seeing `k` or
/// fewer failures has probability alpha. 1 when every run failed.
#[must_use]
pub fn clopper_pearson_upper(k: u64, n: u64, alpha: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    if k == 0 {
        return 1.0 - alpha.powf(1.0 / n as f64);
    }
    // P(X <= k | p) = 1 - I_p(k + 1, n - k); solve I_p(k + 1, n - k) = 1 - alpha.
    bisect(|p| incomplete_beta(p, k as f64 + 1.0, (n - k) as f64), 1.0 - alpha, 0.0, 1.0)
}

/// Demonstrated nines: -log10 of the upper bound.
#[must_use]
pub fn nines(upper_bound: f64) -> f64 {
    let n = -upper_bound.max(f64::MIN_POSITIVE).log10();
    // Never -0.00 for a bound of 1.
    if n > 0.0 { n } else { 0.0 }
}

/// One-sided (1 - alpha) Poisson upper bound on a rate after `k` events in
/// `exposure` (km or hours): the gamma quantile Γ⁻¹(1 - alpha; k + 1) / exposure.
#[must_use]
pub fn poisson_rate_upper(k: u64, exposure: f64, alpha: f64) -> f64 {
    if exposure <= 0.0 {
        return f64::INFINITY;
    }
    let a = k as f64 + 1.0;
    let hi = (a + 50.0 * a.sqrt() + 50.0).max(10.0);
    bisect(|x| incomplete_gamma(a, x), 1.0 - alpha, 0.0, hi) / exposure
}

/// The gate's test: is the candidate's failure rate (`k_b` in `n_b` runs)
/// significantly higher than the baseline's (`k_a` in `n_a`)? Conditional on
/// k_a + k_b failures in all, k_b is binomial with p = n_b / (n_a + n_b)
/// when the rates are equal; returns the one-sided p-value P(X >= k_b).
#[must_use]
pub fn conditional_binomial_p(k_a: u64, n_a: u64, k_b: u64, n_b: u64) -> f64 {
    let total = k_a + k_b;
    if total == 0 || n_a + n_b == 0 {
        return 1.0;
    }
    if k_b == 0 {
        return 1.0;
    }
    let p = n_b as f64 / (n_a + n_b) as f64;
    // P(X >= k_b) for X ~ Bin(total, p) = I_p(k_b, total - k_b + 1).
    incomplete_beta(p, k_b as f64, (total - k_b) as f64 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    #[test]
    fn clopper_pearson_matches_known_bounds() {
        // 0 in 220: 1 - 0.05^(1/220) = 0.013526.
        let u = clopper_pearson_upper(0, 220, 0.05);
        assert!(close(u, 0.0135, 0.01), "{u}");
        // 0 in 3000: 0.000998, three nines.
        let u = clopper_pearson_upper(0, 3000, 0.05);
        assert!(close(u, 0.000_998, 0.001), "{u}");
        assert!((nines(u) - 3.00).abs() < 0.005, "{}", nines(u));
        // 1 in 3000: 0.00158.
        let u = clopper_pearson_upper(1, 3000, 0.05);
        assert!(close(u, 0.001_58, 0.005), "{u}");
        // The bound holds its definition: P(X <= k | p_U) = alpha.
        let u = clopper_pearson_upper(7, 500, 0.05);
        let cdf = 1.0 - incomplete_beta(u, 8.0, 493.0);
        assert!((cdf - 0.05).abs() < 1e-9, "{cdf}");
        assert!((clopper_pearson_upper(5, 5, 0.05) - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn poisson_bounds_match_chi_square_quantiles() {
        // k = 0: -ln(0.05) = 2.9957 events; k = 1: chi2(0.95; 4) / 2 = 4.7439.
        assert!(close(poisson_rate_upper(0, 1.0, 0.05), 2.995_732, 1e-5));
        assert!(close(poisson_rate_upper(1, 1.0, 0.05), 4.743_865, 1e-5));
        assert!(close(poisson_rate_upper(0, 100.0, 0.05), 0.029_957_32, 1e-5));
    }

    #[test]
    fn the_gate_flags_ten_against_one_and_passes_two_against_one() {
        // 10/1000 against 1/1000: P(X >= 10 | Bin(11, 1/2)) = 12 / 2048.
        let p = conditional_binomial_p(1, 1000, 10, 1000);
        assert!(close(p, 12.0 / 2048.0, 1e-9), "{p}");
        assert!(p < 0.05);
        // 2/1000 against 1/1000: P(X >= 2 | Bin(3, 1/2)) = 1/2.
        let p = conditional_binomial_p(1, 1000, 2, 1000);
        assert!(close(p, 0.5, 1e-9), "{p}");
        assert!(p >= 0.05);
        assert!((conditional_binomial_p(0, 1000, 0, 1000) - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn special_functions_match_closed_forms() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        // I_x(1, 1) = x; P(1, x) = 1 - e^-x.
        assert!((incomplete_beta(0.3, 1.0, 1.0) - 0.3).abs() < 1e-12);
        assert!((incomplete_gamma(1.0, 2.0) - (1.0 - (-2f64).exp())).abs() < 1e-12);
    }
}
