//! The Bayesian view of a comparison: the exact chance to beat control for
//! conversions (Beta posteriors), and for every metric gbstats 0.8.0's
//! effect test on the relative lift (a normal likelihood with a flat or
//! normal prior): chance to beat control, expected loss of each choice and a
//! credible interval.
//!
//! What it is not: a decision rule (no threshold on the chance or the risk
//! is applied here), nor Monte Carlo: every number is in closed form.

use serde::{Deserialize, Serialize};

use super::dist::{ln_beta, normal_cdf, normal_isf, normal_pdf, normal_sf};
use super::lift::{Moments, relative_lift, relative_lift_se};
use super::proportions::{ConversionStats, validate_pair};
use super::{Alternative, InputError, Interval, finite, interval};

/// A normal prior on the relative lift, `N(mean, variance)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalPrior {
    /// Prior mean of the relative lift (0: no effect expected).
    pub mean: f64,
    /// Prior variance of the relative lift (positive; 0.01 is a 10% sd).
    pub variance: f64,
}

impl NormalPrior {
    /// Checks the prior: a finite mean and a positive finite variance.
    pub(crate) fn check(&self) -> Result<(), InputError> {
        if !self.mean.is_finite() {
            return Err(InputError::setting(
                "prior.mean",
                format!("must be finite, got {}", self.mean),
            ));
        }
        if !(self.variance.is_finite() && self.variance > 0.0) {
            return Err(InputError::setting(
                "prior.variance",
                format!("must be positive and finite, got {}", self.variance),
            ));
        }
        Ok(())
    }
}

/// The posterior of the relative lift and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiftPosterior {
    /// Posterior mean of the relative lift.
    pub lift_mean: f64,
    /// Posterior standard deviation of the relative lift.
    pub lift_sd: f64,
    /// Credible interval of the relative lift at level `1 - alpha` (one-sided
    /// for a one-sided alternative).
    pub credible_interval: Option<Interval>,
    /// `P(lift > 0)`.
    pub chance_to_beat_control: f64,
    /// Expected loss of keeping control, `E[max(lift, 0)]`, in relative terms.
    pub risk_control: f64,
    /// Expected loss of choosing the treatment, `E[max(-lift, 0)]`.
    pub risk_treatment: f64,
}

/// gbstats' `EffectBayesianABTest` on the relative lift (its default
/// difference type), for arms with plug-in moments `control`, `treatment`:
///
/// * likelihood: the lift `(mean_t - mean_c) / mean_c` with the
///   delta-method variance `V = v_t/(mean_c^2 n_t) + v_c mean_t^2/(mean_c^4 n_c)`;
/// * posterior `N(mu, s^2)`: with the flat (improper) prior `mu` is the lift
///   and `s^2 = V`; with a normal prior `N(mu0, s0^2)`,
///   `1/s^2 = 1/V + 1/s0^2` and `mu = s^2 (lift/V + mu0/s0^2)`;
/// * chance to beat control `P(lift > 0) = Phi(mu/s)`;
/// * risks `E[max(lift, 0)] = mu Phi(mu/s) + s phi(mu/s)` (keeping control)
///   and `E[max(-lift, 0)] = -mu Phi(-mu/s) + s phi(mu/s)` (the treatment),
///   gbstats' truncated-normal means times their probabilities;
/// * credible interval `mu -/+ z s` with the normal quantile.
///
/// `None` where gbstats gives its uninformative default: a control mean of
/// 0 (no relative lift) or an arm without variance.
pub(crate) fn lift_posterior(
    control: &Moments,
    treatment: &Moments,
    alpha: f64,
    alternative: Alternative,
    prior: Option<&NormalPrior>,
) -> Option<LiftPosterior> {
    // gbstats gives its default when either control mean is 0.
    if control.mean == 0.0 || !(control.variance > 0.0 && treatment.variance > 0.0) {
        return None;
    }
    let lift = relative_lift(control.mean, treatment.mean, control.unadjusted_mean)?;
    let data_variance = relative_lift_se(control, treatment)?.powi(2);
    let (mu, variance) = match prior {
        None => (lift, data_variance),
        Some(prior) => {
            let precision = 1.0 / data_variance + 1.0 / prior.variance;
            let mu = (lift / data_variance + prior.mean / prior.variance) / precision;
            (mu, 1.0 / precision)
        }
    };
    let s = variance.sqrt();
    if !(s > 0.0 && s.is_finite() && mu.is_finite()) {
        return None;
    }
    let z = mu / s;
    let density = s * normal_pdf(z);
    Some(LiftPosterior {
        lift_mean: mu,
        lift_sd: s,
        credible_interval: interval(mu, s, alpha, alternative, normal_isf),
        chance_to_beat_control: normal_sf(-z),
        risk_control: finite(mu * normal_cdf(z) + density)?.max(0.0),
        risk_treatment: finite(-mu * normal_sf(z) + density)?.max(0.0),
    })
}

/// Chance to beat control `P(p_t > p_c)` with uniform priors, so posteriors
/// `Beta(1 + x, 1 + n - x)` for each arm.
///
/// Exact, not Monte Carlo: see [`prob_beta_greater`]. With identical arms
/// (e.g. no data in either) it is exactly 0.5. About 1e-13 relative for small
/// counts, and between 1e-9 and 3e-8 at 1e8 units per arm (limited by the
/// logarithms of beta functions of 1e8-sized arguments); the smaller of the chance and its complement is the one
/// computed directly, so neither loses accuracy near 0 or 1.
pub fn chance_to_beat_control(
    control: &ConversionStats,
    treatment: &ConversionStats,
) -> Result<f64, InputError> {
    validate_pair(control, treatment)?;
    let posterior = |s: &ConversionStats| {
        (
            s.conversions as u64 + 1,
            (s.units - s.conversions) as u64 + 1,
        )
    };
    let (a_c, b_c) = posterior(control);
    let (a_t, b_t) = posterior(treatment);
    Ok(prob_beta_greater(a_t, b_t, a_c, b_c))
}

/// `P(X > Y)` for independent `X ~ Beta(a_x, b_x)`, `Y ~ Beta(a_y, b_y)` with
/// integer parameters >= 1 (a parameter of 0 is taken as 1).
///
/// Evan Miller's closed form
/// `P(X > Y) = sum_{i=0}^{a_x - 1} B(a_y + i, b_y + b_x) / ((b_x + i) B(1 + i, b_x) B(a_y, b_y))`
/// has three siblings, by `P(X > Y) = 1 - P(Y > X)` and
/// `P(X > Y) = P(1 - Y > 1 - X)`, which sum over `a_y`, `b_y` or `b_x` terms
/// instead. Of the forms that give the smaller of `P` and `1 - P` directly
/// (so no cancellation), the one with the fewest terms is used.
///
/// The terms are a unimodal probability mass function in `i` whose ratio
/// `w_{i+1}/w_i = (a_y + i)(b_x + i) / ((i + 1)(a_y + b_y + b_x + i))` is
/// exact, so they are generated by that recurrence outward from the mode,
/// scaled so that the largest is 1, with the mode term's logarithm computed
/// from [`ln_beta`]. At 1e8 units per arm a form can still have ~5e7 terms
/// (more than the ~1e7 that fit the time budget), but nearly all of them are
/// below 1e-300 of the sum: the walk in each direction stops once
/// (terms left) x (current term) < 1e-17 x (sum so far). That bound is
/// rigorous because the terms decrease monotonically away from the mode, so
/// what is skipped cannot change the double-precision result. The walk then
/// covers a few hundred standard deviations of the mass function, about
/// 1e5 terms at 1e8 units per arm (under a millisecond in a release build).
///
/// Beyond about 1e10 units per arm (parameters summing to more than 4e10)
/// both the length of that walk (growing like the square root of the counts)
/// and the rounding of the log-beta functions (growing like the counts,
/// ~1e-6 there) make the exact sum pointless; there the result is the normal
/// approximation of the two Beta distributions, whose error at that size is
/// of the same order. This never happens within the specified 1..1e8 range.
pub fn prob_beta_greater(a_x: u64, b_x: u64, a_y: u64, b_y: u64) -> f64 {
    let (a_x, b_x, a_y, b_y) = (a_x.max(1), b_x.max(1), a_y.max(1), b_y.max(1));
    if (a_x, b_x) == (a_y, b_y) {
        return 0.5; // identical distributions: exactly 1/2 by symmetry
    }
    if (a_x as f64 + b_x as f64) + (a_y as f64 + b_y as f64) > EXACT_LIMIT {
        return normal_approximation(a_x, b_x, a_y, b_y);
    }
    // Each form: (terms, parameters of the sum g, whether it gives P or 1 - P).
    // g(A, B, C, D) = P(Beta(A, B) > Beta(C, D)) summed over A terms.
    let direct = [(a_x, b_x, a_y, b_y), (b_y, a_y, b_x, a_x)];
    let complement = [(a_y, b_y, a_x, b_x), (b_x, a_x, b_y, a_y)];
    let fewest = |forms: &[(u64, u64, u64, u64); 2]| {
        if forms[0].0 <= forms[1].0 {
            forms[0]
        } else {
            forms[1]
        }
    };
    let (d, c) = (fewest(&direct), fewest(&complement));
    // Try the cheaper side first; if its value is above 1/2 the other side is
    // the small one and is computed directly instead.
    if d.0 <= c.0 {
        let p = miller_sum(d);
        if p <= 0.5 { p } else { 1.0 - miller_sum(c) }
    } else {
        let q = miller_sum(c);
        if q <= 0.5 { 1.0 - q } else { miller_sum(d) }
    }
    .clamp(0.0, 1.0)
}

/// Above this total of the four parameters (about 1e10 units per arm, 100
/// times the range the module is specified for) the exact sum is not used.
const EXACT_LIMIT: f64 = 4e10;

/// `P(X > Y)` from normal approximations to the two Beta distributions
/// (same means and variances); used only beyond [`EXACT_LIMIT`].
fn normal_approximation(a_x: u64, b_x: u64, a_y: u64, b_y: u64) -> f64 {
    let moments = |a: u64, b: u64| {
        let (a, b) = (a as f64, b as f64);
        let s = a + b;
        (a / s, a / s * (b / s) / (s + 1.0))
    };
    let (mean_x, var_x) = moments(a_x, b_x);
    let (mean_y, var_y) = moments(a_y, b_y);
    normal_sf((mean_y - mean_x) / (var_x + var_y).sqrt())
}

/// `g(A, B, C, D) = sum_{i=0}^{A-1} w_i`, `w_i = B(C+i, D+B) / ((B+i) B(1+i, B) B(C, D))`,
/// summed outward from the mode with the rigorous stopping rule described above.
fn miller_sum((a, b, c, d): (u64, u64, u64, u64)) -> f64 {
    let (bf, cf, df) = (b as f64, c as f64, d as f64);
    let last = a - 1; // highest index
    let ratio = |i: u64| {
        let i = i as f64;
        (cf + i) * (bf + i) / ((i + 1.0) * (cf + df + bf + i))
    };
    // w_{i+1} > w_i  <=>  i < (C B - C - D - B) / (D + 1)
    let mode = ((cf * bf - cf - df - bf) / (df + 1.0)).ceil().max(0.0);
    let start = if mode >= last as f64 {
        last
    } else {
        mode as u64
    };
    let i0 = start as f64;
    let ln_w_start =
        ln_beta(cf + i0, df + bf) - (bf + i0).ln() - ln_beta(1.0 + i0, bf) - ln_beta(cf, df);

    const NEGLIGIBLE: f64 = 1e-17;
    let mut sum = 1.0; // terms relative to w_start
    // Downward: w_{i} = w_{i+1} / ratio(i).
    let mut w = 1.0;
    let mut i = start;
    while i > 0 {
        i -= 1;
        let next = w / ratio(i);
        let decreasing = next <= w;
        w = next;
        sum += w;
        if decreasing && (i + 1) as f64 * w < NEGLIGIBLE * sum {
            break;
        }
    }
    // Upward: w_{i+1} = w_i * ratio(i).
    let mut w = 1.0;
    let mut i = start;
    while i < last {
        let next = w * ratio(i);
        i += 1;
        let decreasing = next <= w;
        w = next;
        sum += w;
        if decreasing && (last - i + 1) as f64 * w < NEGLIGIBLE * sum {
            break;
        }
    }
    (ln_w_start + sum.ln()).exp()
}
