#!/usr/bin/env python3
"""Writes tests/stats/fixtures.json: reference values for flags-core's stats module.

Usage: the versions below are pinned (the script refuses others, so that a
regenerated file differs only where the cases do). gbstats 0.8.0 pins an
older numpy and pandas, so it goes into a virtual environment of its own that
sees the system's scipy, statsmodels and mpmath:

    python3 -m venv --system-site-packages /tmp/gbvenv
    /tmp/gbvenv/bin/pip install gbstats==0.8.0 scipy==1.17.1 statsmodels==0.15.0 mpmath==1.3.0
    /tmp/gbvenv/bin/python tests/stats/generate_fixtures.py

References are the scipy / statsmodels functions wherever one exists:
  t, normal, chi-square tails and quantiles  scipy.stats.{t,norm,chi2}
  two-proportion z-test                      statsmodels proportions_ztest
  Wald interval of p_t - p_c                 statsmodels confint_proportions_2indep(method="wald")
  Welch t-test statistic and p-value         scipy.stats.ttest_ind_from_stats(equal_var=False)
  Welch df and interval of the difference    statsmodels CompareMeans(...).ttest_ind / tconfint_diff(usevar="unequal")
  SRM                                        scipy.stats.chisquare
  Holm / Benjamini-Hochberg                  statsmodels multipletests("holm" / "fdr_bh")
  sample size / power (conversions)          statsmodels samplesize_proportions_2indep_onetail / power_proportions_2indep
  sample size / power / MDE (means)          statsmodels zt_ind_solve_power / NormalIndPower
  ratio metrics (delta method)               gbstats RatioStatistic with TwoSidedTTest / OneSided*TTest
  CUPED                                      gbstats RegressionAdjustedStatistic (theta: compute_theta)
  Bayesian lift (chance, risks, interval)    gbstats EffectBayesianABTest (flat or normal prior)
  chance to beat control                     mpmath: Evan Miller's sum at 40-60 digits, checked against
                                             mpmath quadrature (small counts) and scipy.integrate.quad
                                             (large counts; scipy alone is only good to ~3e-8 there)
Where no library function exists the value is computed here from the spec's
formula with scipy quantiles, and cross-checked where possible:
  relative-lift delta-method interval  (means: checked against gbstats TwoSidedTTest, relative)
  mSPRT p-value and interval           (two-sided: checked against gbstats SequentialTwoSidedTTest,
                                        absolute; one-sided: mpmath, the half-normal mixture)
  always-valid relative-lift interval  (two-sided: checked against gbstats SequentialTwoSidedTTest,
                                        relative)
scipy's own t quantiles are checked against mpmath; the few points where scipy
is wrong (q = 1e-300 with small df, where it returns -inf or a wrong value) are
put in `t_isf_mpmath` with mpmath references instead.
"""

import json
import math
import os
import sys
import warnings

PINNED = {"gbstats": "0.8.0", "scipy": "1.17.1", "statsmodels": "0.15.0", "mpmath": "1.3.0"}


def check_versions():
    """Refuses to run with other versions (or without them) than the pinned ones."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    wrong = {name: installed(name) for name in PINNED if installed(name) != PINNED[name]}
    if wrong:
        sys.exit(f"pinned versions {PINNED}, found {wrong}: see the usage at the top of this file")


check_versions()

import mpmath as mp  # noqa: E402 (after the version check, so that a missing package says how to get it)
import numpy as np
import scipy
import statsmodels
from scipy import integrate, optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.frequentist.tests import (
    FrequentistConfig,
    OneSidedTreatmentGreaterTTest,
    OneSidedTreatmentLesserTTest,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    compute_theta,
)

warnings.filterwarnings("ignore")
mp.mp.dps = 60
HERE = os.path.dirname(os.path.abspath(__file__))
SM_ALT = {"two_sided": "two-sided", "greater": "larger", "less": "smaller"}
SP_ALT = {"two_sided": "two-sided", "greater": "greater", "less": "less"}
cross_checks = []


def num(x):
    """A finite float, or None (the Rust side's None for undefined)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def close(a, b, rel=1e-9, abs_=1e-12):
    return abs(a - b) <= max(rel * abs(b), abs_)


def interval(lower, upper, alternative):
    """One-sided intervals keep only their bounded side (the other is null)."""
    lo, hi = num(lower), num(upper)
    if alternative == "greater":
        hi = None
        if lo is None:
            return None
    elif alternative == "less":
        lo = None
        if hi is None:
            return None
    elif lo is None or hi is None:
        return None
    return {"lower": lo, "upper": hi}


# ---------------------------------------------------------------- distributions
DFS = [1, 1.5, 2, 2.5, 3, 4, 5, 7.3, 10, 17.5, 30, 50, 100, 250.5, 1e3, 3e3, 1e4, 3e4,
       99_999, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8, 2e8]
TS = [1e-6, 1e-3, 0.05, 0.3, 0.8, 1, 1.5, 1.96, 2.5, 3, 4, 5, 6, 8, 12, 20, 37, -0.5, -2, -7]
QS = [1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.45,
      0.55, 0.7, 0.9, 0.95, 0.975, 0.99, 0.999]


def mp_t_sf(t, df):
    t, df = mp.mpf(t), mp.mpf(df)
    tail = mp.betainc(df / 2, mp.mpf(1) / 2, 0, df / (df + t * t), regularized=True) / 2
    return tail if t > 0 else 1 - tail


def mp_t_isf(q, df, start):
    """Root of sf(t) = q near `start`."""
    return mp.findroot(lambda t: mp_t_sf(t, df) - mp.mpf(q), mp.mpf(start))


def mp_t_isf_tail(q, df, start):
    """Far-tail root of ln sf(e^u) = ln q in u = ln t (nearly linear in u there)."""
    q = mp.mpf(q)
    u = mp.findroot(lambda u: mp.log(mp_t_sf(mp.exp(u), df)) - mp.log(q), mp.log(mp.mpf(start)))
    return mp.exp(u)


def distributions():
    t_sf, t_isf, t_isf_mp = [], [], []
    for df in DFS:
        for t in TS:
            ref = stats.t.sf(t, df)
            if df <= 1e4:
                exact = float(mp_t_sf(t, df))
                assert close(ref, exact, 1e-8, 1e-15), (t, df, ref, exact)
            t_sf.append({"t": t, "df": df, "expected": num(ref)})
        for q in QS:
            ref = stats.t.isf(q, df)
            if df <= 1e4:
                exact = float(mp_t_isf(q, df, ref))
                assert close(ref, exact, 1e-8, 1e-15), (q, df, ref, exact)
            t_isf.append({"q": q, "df": df, "expected": num(ref)})
    # Extreme tails, where scipy 1.17 returns -inf or a wrong value for small df.
    for df in [1, 1.3, 2, 2.5, 4, 10]:
        for q in [1e-300, 1e-100]:
            start = mp.mpf(q) ** (-1 / mp.mpf(df))  # the tail falls like t^-df
            exact = mp_t_isf_tail(q, df, start)
            t_isf_mp.append({"q": q, "df": df, "expected": num(exact), "scipy": num(stats.t.isf(q, df))})
    xs = [-8, -3, -1, -1e-3, 0, 1e-3, 0.5, 1, 1.6449, 1.96, 2.4, 2.6, 3, 5, 8, 12, 20, 30, 37.5]
    normal_sf = [{"x": x, "expected": num(stats.norm.sf(x))} for x in xs]
    normal_isf = [{"q": q, "expected": num(stats.norm.isf(q))} for q in QS + [1e-300, 1e-50, 0.5]]
    chi2 = []
    for k in [1, 2, 3, 4, 7]:
        for x in [1e-8, 0.01, 0.5, 1, 3, 7.8, 16.3, 30, 100, 500, 1400]:
            chi2.append({"x": x, "k": k, "expected": num(stats.chi2.sf(x, k))})
    return {"t_sf": t_sf, "t_isf": t_isf, "t_isf_mpmath": t_isf_mp, "normal_sf": normal_sf,
            "normal_isf": normal_isf, "chi2_sf": chi2}


# ---------------------------------------------------------------- conversions
def conversion_case(c, t, alpha, alternative):
    (n_c, x_c), (n_t, x_t) = c, t
    case = {"control": {"units": n_c, "conversions": x_c},
            "treatment": {"units": n_t, "conversions": x_t},
            "alpha": alpha, "alternative": alternative}
    if n_c == 0 or n_t == 0:
        case["expected"] = {k: None for k in ["difference", "difference_ci", "relative_lift",
                                               "relative_lift_ci", "statistic", "df", "p_value"]}
        return case
    p_c, p_t = x_c / n_c, x_t / n_t
    z, p = proportions_ztest([x_t, x_c], [n_t, n_c], value=0, alternative=SM_ALT[alternative],
                             prop_var=False)
    pooled = (x_c + x_t) / (n_c + n_t)
    if pooled * (1 - pooled) == 0:
        z, p = None, None
    # statsmodels' Wald interval, also where its standard error is 0: then it
    # is the point [d, d] (e.g. [0, 0] with no conversions in either arm).
    level = alpha if alternative == "two_sided" else 2 * alpha
    lo, hi = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff",
                                        alpha=level)
    diff_ci = interval(lo, hi, alternative)
    # Relative lift: delta method (no library function), normal quantile; a
    # variance of 0 (no treatment conversions: lift -1) is the point [-1, -1].
    lift, lift_ci = None, None
    if p_c > 0:
        lift = p_t / p_c - 1
        var = p_t * (1 - p_t) / (p_c**2 * n_t) + p_c * (1 - p_c) * p_t**2 / (p_c**4 * n_c)
        q = stats.norm.isf(alpha / 2 if alternative == "two_sided" else alpha)
        se = math.sqrt(var)
        lift_ci = interval(lift - q * se, lift + q * se, alternative)
    case["expected"] = {"difference": num(p_t - p_c), "difference_ci": diff_ci,
                        "relative_lift": num(lift), "relative_lift_ci": lift_ci,
                        "statistic": num(z), "df": None, "p_value": num(p)}
    return case


CONVERSION_PAIRS = [
    ((1000, 100), (1000, 120)),      # balanced
    ((5000, 400), (1200, 130)),      # unbalanced
    ((1, 0), (1, 1)),                # n = 1
    ((2, 1), (2, 1)),                # n = 2, identical
    ((2, 0), (1, 1)),
    ((1000, 0), (1000, 0)),          # no conversions at all: SE 0
    ((1000, 1000), (1000, 1000)),    # all conversions: SE 0
    ((1000, 0), (1000, 5)),          # zero control rate: no lift
    ((500, 500), (500, 499)),        # full conversion in control
    ((10_000, 1234), (10_000, 1234)),  # identical arms: z = 0, p = 1
    ((100_000_000, 5_000_000), (100_000_000, 5_010_000)),  # huge
    ((100_000_000, 5_000_000), (100_000_000, 5_000_001)),  # huge, nearly identical
    ((100_000_000, 50_000_000), (99_000_000, 49_700_000)),  # huge, tiny p-value
    ((100_000_000, 10), (100_000_000, 25)),  # huge, rare events
    ((0, 0), (10, 3)),               # empty control
    ((40, 3), (37, 9)),
    ((1000, 10), (1000, 0)),         # no treatment conversions: relative interval [-1, -1]
]


def conversions():
    out = []
    for c, t in CONVERSION_PAIRS:
        for alternative in ["two_sided", "greater", "less"]:
            out.append(conversion_case(c, t, 0.05, alternative))
    out.append(conversion_case((1000, 100), (1000, 130), 0.01, "two_sided"))
    out.append(conversion_case((1000, 100), (1000, 130), 0.2, "greater"))
    return out


# ---------------------------------------------------------------- means
def moments(n, s, ss):
    mean = s / n
    var = (ss - s * (s / n)) / (n - 1) if n >= 2 else None
    return mean, (max(var, 0.0) if var is not None else None)


def arm_from(n, mean, sd):
    """(units, sum, sum_of_squares) of an arm with this mean and sample sd."""
    s = n * mean
    return n, s, (n - 1) * sd * sd + s * mean


def descr(n, mean, var):
    """statsmodels DescrStatsW with exactly this n, mean and (ddof=1) variance:
    two points mean -/+ h with weight n/2 each, h^2 = var (n - 1) / n."""
    h = math.sqrt(var * (n - 1) / n)
    return DescrStatsW(np.array([mean - h, mean + h]), weights=np.array([n / 2, n / 2]))


def mean_case(c, t, alpha, alternative):
    case = {"control": {"units": c[0], "sum": c[1], "sum_of_squares": c[2]},
            "treatment": {"units": t[0], "sum": t[1], "sum_of_squares": t[2]},
            "alpha": alpha, "alternative": alternative}
    m_c, v_c = moments(*c)
    m_t, v_t = moments(*t)
    n_c, n_t = c[0], t[0]
    expected = {"difference": num(m_t - m_c),
                "relative_lift": num(m_t / m_c - 1) if m_c != 0 else None,
                "difference_ci": None, "relative_lift_ci": None,
                "statistic": None, "df": None, "p_value": None}
    if v_c is not None and v_t is not None and v_c / n_c + v_t / n_t > 0:
        res = stats.ttest_ind_from_stats(m_t, math.sqrt(v_t), n_t, m_c, math.sqrt(v_c), n_c,
                                         equal_var=False, alternative=SP_ALT[alternative])
        cm = CompareMeans(descr(n_t, m_t, v_t), descr(n_c, m_c, v_c))
        t_sm, p_sm, df = cm.ttest_ind(alternative=SM_ALT[alternative], usevar="unequal")
        assert close(t_sm, res.statistic, 1e-7) and close(p_sm, res.pvalue, 1e-6, 1e-12), \
            (c, t, t_sm, res.statistic, p_sm, res.pvalue)
        lo, hi = cm.tconfint_diff(alpha=alpha, alternative=SM_ALT[alternative], usevar="unequal")
        expected.update({"statistic": num(res.statistic), "p_value": num(res.pvalue),
                         "df": num(df), "difference_ci": interval(lo, hi, alternative)})
        if m_c != 0:
            lift = m_t / m_c - 1
            var = v_t / (m_c**2 * n_t) + v_c * m_t**2 / (m_c**4 * n_c)
            q = stats.t.isf(alpha / 2 if alternative == "two_sided" else alpha, df)
            se = math.sqrt(var)
            expected["relative_lift_ci"] = interval(lift - q * se, lift + q * se, alternative) \
                if var > 0 else None
            if alternative == "two_sided" and v_c > 0 and v_t > 0:
                gb = TwoSidedTTest(SampleMeanStatistic(n=n_c, sum=c[1], sum_squares=c[2]),
                                   SampleMeanStatistic(n=n_t, sum=t[1], sum_squares=t[2]),
                                   FrequentistConfig(alpha=alpha, difference_type="relative"))
                r = gb.compute_result()
                assert close(r.ci[0], lift - q * se, 1e-6) and close(r.ci[1], lift + q * se, 1e-6), \
                    (c, t, r.ci, lift - q * se)
                cross_checks.append("means relative-lift CI == gbstats TwoSidedTTest")
    case["expected"] = expected
    return case


MEAN_PAIRS = [
    (arm_from(1000, 10.0, 3.0), arm_from(1000, 10.4, 3.1)),          # balanced
    (arm_from(50, 2.0, 1.0), arm_from(5000, 2.2, 9.0)),              # unbalanced, unequal variances
    (arm_from(3, 1.0, 0.1), arm_from(400, 1.5, 40.0)),               # very unequal, df ~ 2
    (arm_from(2, 5.0, 1.0), arm_from(2, 7.0, 2.0)),                  # n = 2
    ((1, 4.0, 16.0), arm_from(10, 5.0, 1.0)),                        # n = 1: no variance
    (arm_from(100, 3.0, 0.0), arm_from(100, 3.0, 0.0)),              # zero variance
    (arm_from(100, 3.0, 0.0), arm_from(100, 3.5, 0.0)),              # zero variance, different means
    (arm_from(100, 0.0, 1.0), arm_from(100, 0.3, 1.0)),              # control mean 0: no lift
    (arm_from(2000, 7.25, 2.5), arm_from(2000, 7.25, 2.5)),          # identical arms
    (arm_from(100_000_000, 12.0, 30.0), arm_from(100_000_000, 12.01, 30.0)),  # huge
    (arm_from(100_000_000, 12.0, 30.0), arm_from(90_000_000, 12.0001, 31.0)),
    (arm_from(30, -4.0, 2.0), arm_from(35, -3.0, 2.5)),              # negative means
    ((5, 10.0, 30.0), (7, 21.0, 70.0)),                              # small integers
]


def means():
    out = []
    for c, t in MEAN_PAIRS:
        for alternative in ["two_sided", "greater", "less"]:
            out.append(mean_case(c, t, 0.05, alternative))
    out.append(mean_case(*MEAN_PAIRS[1], 0.01, "two_sided"))
    return out


# ---------------------------------------------------------------- SRM, adjustment
def srm():
    cases = [
        ([5000, 5000], [1, 1]), ([5000, 5100], [1, 1]), ([5000, 5400], [50, 50]),
        ([3300, 3300, 3400], [33, 33, 34]), ([3300, 3600, 3400], [33, 33, 34]),
        ([1000, 2000, 1000, 1000, 1000], [1, 2, 1, 1, 1]), ([1, 0], [1, 1]),
        ([100_000_000, 99_990_000], [1, 1]), ([100_000_000, 99_000_000], [1, 1]),
        ([900, 100], [0.9, 0.1]), ([0, 0, 0], [1, 1, 1]),
    ]
    # The threshold is a setting: p = 0.0023 passes at 0.001 and fails at 0.01.
    thresholds = [0.001] * len(cases) + [0.01, 0.001, 0.05]
    cases += [([5000, 5300], [1, 1]), ([5000, 5300], [1, 1]), ([3300, 3450, 3400], [33, 33, 34])]
    out = []
    for (units, weights), threshold in zip(cases, thresholds):
        total = sum(units)
        if total == 0:
            exp = {"statistic": None, "df": len(units) - 1, "p_value": None, "mismatch": False}
        else:
            expected = [total * w / sum(weights) for w in weights]
            res = stats.chisquare(units, expected)
            exp = {"expected_units": expected, "statistic": num(res.statistic), "df": len(units) - 1,
                   "p_value": num(res.pvalue), "mismatch": bool(res.pvalue < threshold)}
        exp["threshold"] = threshold
        out.append({"request": {"units": units, "weights": weights, "threshold": threshold},
                    "expected": exp})
    return out


def adjustments():
    families = [[0.01, 0.04, 0.03], [0.2, 0.001, 0.04, 0.5], [0.6, 0.9], [0.01, 0.01, 0.02, 0.8],
                [0.04], [1e-12, 0.03, 0.049, 0.051], [0.3, 0.3, 0.3, 0.3]]
    out = []
    for p in families:
        for method, sm in [("holm", "holm"), ("benjamini_hochberg", "fdr_bh")]:
            for alpha in [0.05, 0.01]:
                reject, adjusted, _, _ = multipletests(p, alpha=alpha, method=sm)
                out.append({"request": {"p_values": p, "correction": method, "alpha": alpha},
                            "expected": {"adjusted_p_values": [float(x) for x in adjusted],
                                         "rejected": [bool(r) for r in reject]}})
    return out


# ---------------------------------------------------------------- sequential
def msprt_reference(d, V, n_total, alpha, S, tau2, previous, alternative):
    """The mixture SPRT at 60 digits: (p, lower, upper, tau^2, ln L).

    Two-sided: the normal mixture (GrowthBook's). One-sided: the half-normal
    mixture on the alternative's side (as the guardrail test), whose
    always-valid bound d -/+ z* sqrt(V) has ln L(z*) = ln(1/alpha), found by
    mpmath's root finder.
    """
    d, V = mp.mpf(d), mp.mpf(V)
    if tau2 is None:
        rho2 = (-2 * mp.log(alpha) + mp.log(1 - 2 * mp.log(alpha))) / S
        tau2 = rho2 * n_total * V
    tau2 = mp.mpf(tau2)
    r = tau2 / V
    if alternative == "two_sided":
        ln_l = mp.log(V / (V + tau2)) / 2 + tau2 * d**2 / (2 * V * (V + tau2))
        half = mp.sqrt(V * (V + tau2) / tau2 * (2 * mp.log(1 / mp.mpf(alpha)) + mp.log((V + tau2) / V)))
        lo, hi = d - half, d + half
    else:
        shrink = r / (1 + r)
        one_sided = lambda z: (mp.log(2) - mp.log(1 + r) / 2 + z * z * shrink / 2
                               + mp.log(mp.ncdf(z * mp.sqrt(shrink))))
        sign = 1 if alternative == "greater" else -1
        ln_l = one_sided(sign * d / mp.sqrt(V))
        z_star = mp.findroot(lambda z: one_sided(z) - mp.log(1 / mp.mpf(alpha)),
                             mp.sqrt(2 * mp.log(1 / mp.mpf(alpha)) / shrink))
        lo, hi = (d - z_star * mp.sqrt(V), None) if sign > 0 else (None, d + z_star * mp.sqrt(V))
    p = min(mp.mpf(1), mp.exp(-ln_l))
    if previous is not None:
        p = min(p, mp.mpf(previous))
    return (float(p), None if lo is None else float(lo), None if hi is None else float(hi),
            float(tau2), float(ln_l))


def sequential():
    """Two-arm analyze requests; expected values of comparisons[0].sequential."""
    # (metric, arms, alpha, S, tau2, previous p, alternative, look, previous rejected_at)
    specs = [
        ("conversion", [(1000, 100), (1000, 120)], 0.05, 5000, None, None, "two_sided", 1, None),
        ("conversion", [(20_000, 2000), (20_000, 2300)], 0.05, 5000, None, None, "two_sided", 1, None),
        ("conversion", [(20_000, 2000), (20_000, 2300)], 0.05, 5000, None, 1e-6, "two_sided", 7, 4),
        ("conversion", [(500, 40), (520, 45)], 0.1, 100_000, None, 0.4, "two_sided", 3, None),
        ("conversion", [(100_000_000, 5_000_000), (100_000_000, 5_050_000)], 0.05, 5000, None, None,
         "two_sided", 1, None),
        ("conversion", [(3000, 300), (3000, 330)], 0.05, 5000, 1e-4, None, "two_sided", 1, None),
        ("conversion", [(10, 0), (10, 0)], 0.05, 5000, None, 0.5, "two_sided", 2, None),
        ("mean", [arm_from(800, 10.0, 3.0), arm_from(820, 10.5, 3.3)], 0.05, 5000, None, None,
         "two_sided", 1, None),
        ("mean", [arm_from(100_000_000, 12.0, 30.0), arm_from(100_000_000, 12.02, 30.0)], 0.05,
         1e6, None, None, "two_sided", 1, None),
        # Decreases, and one-sided tests in either direction.
        ("conversion", [(20_000, 2300), (20_000, 2000)], 0.05, 5000, None, None, "two_sided", 5, None),
        ("conversion", [(20_000, 2000), (20_000, 2300)], 0.05, 5000, None, None, "greater", 2, None),
        ("conversion", [(20_000, 2000), (20_000, 2300)], 0.05, 5000, None, None, "less", 2, None),
        ("conversion", [(20_000, 2300), (20_000, 2000)], 0.01, 40_000, None, 0.2, "less", 9, None),
        ("conversion", [(3000, 300), (3000, 310)], 0.05, 5000, None, None, "greater", 1, None),
        ("mean", [arm_from(800, 10.0, 3.0), arm_from(820, 10.5, 3.3)], 0.1, 5000, 0.01, None,
         "greater", 1, None),
        ("mean", [arm_from(800, 10.0, 3.0), arm_from(820, 9.6, 3.3)], 0.05, 2000, None, None,
         "less", 4, None),
        # Degenerate lifts: no control conversions (no relative lift), no
        # treatment conversions (a lift of -1 with standard error 0).
        ("conversion", [(1000, 0), (1000, 5)], 0.05, 5000, None, None, "two_sided", 1, None),
        ("conversion", [(1000, 50), (1000, 0)], 0.05, 5000, None, None, "two_sided", 1, None),
    ]
    out = []
    for metric, arms, alpha, S, tau2, previous, alternative, look, rejected_at in specs:
        if metric == "conversion":
            (n_c, x_c), (n_t, x_t) = arms
            m_c, m_t = x_c / n_c, x_t / n_t
            v_c, v_t = m_c * (1 - m_c), m_t * (1 - m_t)
            arm_json = [{"name": "control", "units": n_c, "conversions": x_c},
                        {"name": "treatment", "units": n_t, "conversions": x_t}]
            gb_stats = [ProportionStatistic(n=n_c, sum=x_c), ProportionStatistic(n=n_t, sum=x_t)] \
               
        else:
            (n_c, s_c, ss_c), (n_t, s_t, ss_t) = arms
            m_c, v_c = moments(*arms[0])
            m_t, v_t = moments(*arms[1])
            arm_json = [{"name": "control", "units": n_c, "sum": s_c, "sum_of_squares": ss_c},
                        {"name": "treatment", "units": n_t, "sum": s_t, "sum_of_squares": ss_t}]
            gb_stats = [SampleMeanStatistic(n=n_c, sum=s_c, sum_squares=ss_c),
                        SampleMeanStatistic(n=n_t, sum=s_t, sum_squares=ss_t)]
        V = v_c / n_c + v_t / n_t
        request = {"metric": metric, "arms": arm_json, "alpha": alpha, "alternative": alternative,
                   "sequential": {"planned_total_units": S, "tau_squared": tau2,
                                  "previous_p_values": [None, previous], "look": look,
                                  "previous_rejected_at": [None, rejected_at]}}
        if V > 0:
            p, lo, hi, tau2_used, ln_l = msprt_reference(m_t - m_c, V, n_c + n_t, alpha, S, tau2,
                                                         previous, alternative)
            expected = {"p_value": p, "ci": {"lower": lo, "upper": hi}, "tau_squared": tau2_used,
                        "ln_likelihood_ratio": ln_l}
            relative = relative_lift_reference(m_c, v_c, n_c, m_t, v_t, n_t, tau2_used / V, alpha,
                                               alternative)
            # gbstats gives an arm with a mean or a variance of 0 its default
            # (empty) result; here they have the spec's.
            if (tau2 is None and previous is None and alternative == "two_sided"
                    and v_c > 0 and v_t > 0):
                gb = SequentialTwoSidedTTest(*gb_stats, SequentialConfig(
                    alpha=alpha, sequential_tuning_parameter=S, difference_type="absolute"))
                r = gb.compute_result()
                assert close(r.ci[0], lo, 1e-9) and close(r.ci[1], hi, 1e-9), (arms, r.ci, lo, hi)
                assert close(r.p_value, p, 1e-9, 1e-300), (arms, r.p_value, p)
                cross_checks.append("mSPRT CI and p-value == gbstats SequentialTwoSidedTTest")
                gb = SequentialTwoSidedTTest(*gb_stats, SequentialConfig(
                    alpha=alpha, sequential_tuning_parameter=S, difference_type="relative"))
                ci = gb.compute_result().ci
                assert close(ci[0], relative["ci"]["lower"], 1e-9), (arms, ci, relative)
                assert close(ci[1], relative["ci"]["upper"], 1e-9), (arms, ci, relative)
                cross_checks.append("always-valid relative lift CI == gbstats "
                                    "SequentialTwoSidedTTest(difference_type='relative')")
        else:
            p = previous
            expected = {"p_value": previous, "ci": None, "tau_squared": tau2, "ln_likelihood_ratio": None}
            relative = {"ci": None, "undefined_because":
                        "the relative lift is undefined: the control's mean is 0" if m_c == 0 else
                        "the difference's variance is 0 or undefined, so this look is undefined"}
        significant = p is not None and p <= alpha
        expected.update({
            "look": look,
            "significant": significant,
            "rejected_at": rejected_at if rejected_at is not None else (look if significant else None),
            "direction": ("increase" if m_t > m_c else "decrease") if significant else None,
        })
        out.append({"request": request, "expected": expected, "expected_relative_lift": relative})
    return out


def relative_lift_reference(m_c, v_c, n_c, m_t, v_t, n_t, r, alpha, alternative):
    """The always-valid interval of the relative lift: the mSPRT boundary at
    the difference's r = tau^2 / V, applied to the lift with its
    delta-method variance (gbstats' frequentist_variance, relative)."""
    if m_c == 0:
        return {"ci": None, "undefined_because": "the relative lift is undefined: the control's mean is 0"}
    m_c, m_t = mp.mpf(m_c), mp.mpf(m_t)
    lift = (m_t - m_c) / m_c
    var = v_t / (m_c**2 * n_t) + v_c * m_t**2 / (m_c**4 * n_c)
    if var == 0:
        # A degenerate interval around the lift, as the fixed-horizon one.
        bound = float(lift)
        return {"ci": interval(bound, bound, alternative), "undefined_because": None}
    _, lo, hi, _, _ = msprt_reference(lift, var, n_c + n_t, alpha, None, r * var, None, alternative)
    return {"ci": {"lower": lo, "upper": hi}, "undefined_because": None}


# ---------------------------------------------------------------- planning
def planning():
    sizes, powers = [], []
    for p_c in [0.01, 0.05, 0.1, 0.3, 0.5, 0.9]:
        for mde in [-0.2, -0.05, 0.01, 0.05, 0.1, 0.5]:
            if not 0 <= p_c * (1 + mde) <= 1:
                continue
            for alpha, power in [(0.05, 0.8), (0.01, 0.9), (0.1, 0.5)]:
                p_t = p_c * (1 + mde)
                n = samplesize_proportions_2indep_onetail(p_t - p_c, p_c, power, ratio=1,
                                                          alpha=alpha, alternative="two-sided")
                sizes.append({"baseline_rate": p_c, "relative_mde": mde, "alpha": alpha,
                              "power": power, "expected": int(math.ceil(n))})
            for n in [1, 100, 5000, 1_000_000]:
                p_t = p_c * (1 + mde)
                pw = power_proportions_2indep(p_t - p_c, p_c, n, ratio=1, alpha=0.05,
                                              alternative="two-sided", return_results=False)
                powers.append({"baseline_rate": p_c, "relative_mde": mde, "alpha": 0.05,
                               "units_per_arm": n, "expected": num(pw)})
    return {"sample_size": sizes, "power": powers, "plans": plans()}


SM_ALT_PLAN = {"two_sided": "two-sided", "greater": "larger", "less": "smaller"}


def plans():
    """PlanningRequest -> Plan for both metrics, unequal splits and both sides.

    Conversions: statsmodels samplesize_proportions_2indep_onetail (sample
    size, the far tail ignored) and power_proportions_2indep (power, both
    tails), treatment as sample 1 with ratio = w_c / w_t; the detectable
    effect is the root of that power in the effect (scipy brentq, xtol 1e-15).
    Means: zt_ind_solve_power / NormalIndPower (z-test, both tails), effect
    size d / sd, the same sample convention; the detectable effect is the
    brentq root of NormalIndPower's power.
    """
    out = []
    conversion_specs = [
        # (p_c, relative mde, alpha, power, alternative, weights, control units)
        (0.1, 0.05, 0.05, 0.8, "two_sided", [1, 1], 50_000),
        (0.1, 0.05, 0.05, 0.8, "greater", [1, 1], 50_000),
        (0.1, -0.05, 0.05, 0.8, "less", [1, 1], 50_000),
        (0.1, 0.05, 0.05, 0.8, "two_sided", [3, 1], 30_000),
        (0.03, 0.2, 0.01, 0.9, "two_sided", [1, 4], 2_000),
        (0.5, -0.1, 0.1, 0.5, "less", [2, 3], 1000),
        (0.9, 0.1, 0.05, 0.8, "greater", [1, 1], 300),
    ]
    for p_c, mde, alpha, power, alt, w, units in conversion_specs:
        ratio = w[0] / w[1]
        d = p_c * mde
        n_t = samplesize_proportions_2indep_onetail(d, p_c, power, ratio=ratio, alpha=alpha,
                                                    alternative=SM_ALT_PLAN[alt])
        base = {"baseline_rate": p_c, "alpha": alpha, "power": power, "alternative": alt,
                "weights": w}
        achieved = power_proportions_2indep(d, p_c, units / ratio, ratio=ratio, alpha=alpha,
                                            alternative=SM_ALT_PLAN[alt], return_results=False)
        out.append({"request": {**base, "relative_mde": mde, "units_per_arm": units},
                    "expected": {"metric": "conversion", "treatment_rate": p_c + d, "absolute_mde": d,
                                 "sample_size": size(n_t, ratio),
                                 "units_per_arm": max(size(n_t, ratio)["control"],
                                                      size(n_t, ratio)["treatment"]),
                                 "achieved_power": {"units_per_arm": units, "power": num(achieved)},
                                 "detectable_effect": None}})
        sign = -1 if alt == "less" else 1
        room = p_c if sign < 0 else 1 - p_c
        f = lambda m: power_proportions_2indep(sign * m, p_c, units / ratio, ratio=ratio, alpha=alpha,
                                               alternative=SM_ALT_PLAN[alt],
                                               return_results=False) - power
        detectable = sign * optimize.brentq(f, 1e-12, room, xtol=1e-15) if f(room) >= 0 else None
        out.append({"request": {**base, "units_per_arm": units},
                    "expected": {"metric": "conversion", "absolute_mde": None, "sample_size": None,
                                 "achieved_power": None,
                                 "detectable_effect": {"units_per_arm": units, "absolute": num(detectable),
                                                       "relative": num(detectable / p_c)
                                                       if detectable is not None else None}}})
    mean_specs = [
        # (mean, sd, relative mde, alpha, power, alternative, weights, control units)
        (25.0, 22.0, 0.03, 0.05, 0.8, "two_sided", [1, 1], 10_000),
        (25.0, 22.0, 0.03, 0.05, 0.8, "greater", [1, 1], 10_000),
        (25.0, 22.0, -0.03, 0.05, 0.8, "less", [1, 1], 10_000),
        (4.0, 1.5, 0.1, 0.01, 0.95, "two_sided", [1, 3], 400),
        (-3.0, 2.0, 0.05, 0.1, 0.7, "two_sided", [4, 1], 5000),
        (100.0, 10.0, 0.15, 0.05, 0.8, "two_sided", [1, 1], 3),  # a handful of units
    ]
    for mean, sd, mde, alpha, power, alt, w, units in mean_specs:
        ratio = w[0] / w[1]
        d = mean * mde
        n_t = zt_ind_solve_power(effect_size=d / sd, nobs1=None, alpha=alpha, power=power,
                                 ratio=ratio, alternative=SM_ALT_PLAN[alt])
        achieved = NormalIndPower().power(d / sd, units / ratio, alpha, ratio=ratio,
                                          alternative=SM_ALT_PLAN[alt])
        base = {"baseline_mean": mean, "sd": sd, "alpha": alpha, "power": power,
                "alternative": alt, "weights": w}
        out.append({"request": {**base, "relative_mde": mde, "units_per_arm": units},
                    "expected": {"metric": "mean", "treatment_mean": mean + d, "absolute_mde": d,
                                 "sample_size": size(float(n_t), ratio),
                                 "achieved_power": {"units_per_arm": units, "power": num(achieved)},
                                 "detectable_effect": None}})
        # zt_ind_solve_power's own root finder stops at about 1e-5 here (its
        # power comes back as 0.799999), so the reference is the root of
        # NormalIndPower's power by brentq, checked against it.
        sign = -1 if alt == "less" else 1
        f = lambda e: NormalIndPower().power(sign * e, units / ratio, alpha, ratio=ratio,
                                             alternative=SM_ALT_PLAN[alt]) - power
        es = sign * optimize.brentq(f, 1e-12, 100, xtol=1e-15, rtol=1e-15)
        solved = zt_ind_solve_power(effect_size=None, nobs1=units / ratio, alpha=alpha, power=power,
                                    ratio=ratio, alternative=SM_ALT_PLAN[alt])
        assert close(float(solved), es, 1e-4), (solved, es)
        cross_checks.append("mean detectable effect == zt_ind_solve_power (1e-4, its tolerance)")
        detectable = es * sd
        out.append({"request": {**base, "units_per_arm": units},
                    "expected": {"metric": "mean", "sample_size": None,
                                 "detectable_effect": {"units_per_arm": units, "absolute": detectable,
                                                       "relative": detectable / mean}}})
    return out


def size(n_t, ratio):
    n_c = n_t * ratio
    return {"control": math.ceil(n_c), "treatment": math.ceil(n_t),
            "total": math.ceil(n_c) + math.ceil(n_t), "control_unrounded": n_c,
            "treatment_unrounded": n_t}


# ---------------------------------------------------------------- chance to beat control
def ctbc_exact(a_t, b_t, a_c, b_c):
    """Evan Miller's sum evaluated in 60-digit arithmetic (small parameters)."""
    total = mp.mpf(0)
    for i in range(a_t):
        total += mp.exp(mp.log(mp.beta(a_c + i, b_c + b_t)) - mp.log(b_t + i)
                        - mp.log(mp.beta(1 + i, b_t)) - mp.log(mp.beta(a_c, b_c)))
    return total


def ctbc_window_mp(a_t, b_t, a_c, b_c):
    """Large parameters: the same sum at 40 digits, walked outward from its
    (unimodal) mode until the terms fall below 1e-30 of the mode term; the
    skipped tail is below 1e-22 of the result."""
    with mp.workdps(40):
        B, C, D = mp.mpf(b_t), mp.mpf(a_c), mp.mpf(b_c)
        mode = int(mp.ceil((C * B - C - D - B) / (D + 1)))
        mode = max(0, min(mode, a_t - 1))
        i0 = mp.mpf(mode)
        ln_w = (mp.log(mp.beta(C + i0, D + B)) - mp.log(B + i0) - mp.log(mp.beta(1 + i0, B))
                - mp.log(mp.beta(C, D)))
        ratio = lambda i: (C + i) * (B + i) / ((i + 1) * (C + D + B + i))
        total, w, i = mp.mpf(1), mp.mpf(1), mode
        while i > 0 and w > mp.mpf(10) ** -30:
            i -= 1
            w /= ratio(i)
            total += w
        w, i = mp.mpf(1), mode
        while i < a_t - 1 and w > mp.mpf(10) ** -30:
            w *= ratio(i)
            i += 1
            total += w
        return mp.exp(ln_w) * total


def ctbc_quad_mp(a_t, b_t, a_c, b_c):
    """P(X_t > X_c) = int f_c(x) (1 - I_x(a_t, b_t)) dx by mpmath quadrature."""
    f = lambda x: mp.betainc(a_t, b_t, x, 1, regularized=True) * x**(a_c - 1) * (1 - x)**(b_c - 1) \
        / mp.beta(a_c, b_c)
    return mp.quad(f, [0, mp.mpf(a_c) / (a_c + b_c), 1])


def ctbc_quad_scipy(a_t, b_t, a_c, b_c):
    """Large counts: integrate the smaller of P and 1 - P with scipy over the
    control posterior's bulk (mean -/+ 60 sd, where all the mass is)."""
    mean = a_c / (a_c + b_c)
    sd = math.sqrt(a_c * b_c / ((a_c + b_c) ** 2 * (a_c + b_c + 1)))
    lo, hi = max(0.0, mean - 60 * sd), min(1.0, mean + 60 * sd)
    mean_t = a_t / (a_t + b_t)
    pts = sorted({min(max(x, lo), hi) for x in [mean, mean_t, mean - 5 * sd, mean + 5 * sd]})
    # upper tail of treatment at x (P(X_t > x)) and lower tail (P(X_t < x))
    up = lambda x: math.exp(stats.beta.logpdf(x, a_c, b_c) + stats.beta.logsf(x, a_t, b_t))
    dn = lambda x: math.exp(stats.beta.logpdf(x, a_c, b_c) + stats.beta.logcdf(x, a_t, b_t))
    kw = dict(points=pts, limit=2000, epsabs=0, epsrel=1e-13)
    p_up = integrate.quad(up, lo, hi, **kw)[0]
    p_dn = integrate.quad(dn, lo, hi, **kw)[0]
    return p_up if p_up <= p_dn else 1 - p_dn


def bayes():
    small = [((0, 0), (0, 0)), ((1, 0), (1, 1)), ((2, 1), (2, 1)), ((10, 2), (10, 5)),
             ((100, 10), (100, 14)), ((100, 14), (100, 10)), ((1000, 100), (1000, 120)),
             ((1000, 0), (1000, 0)), ((50, 50), (50, 49)), ((300, 10), (200, 30)),
             ((2000, 150), (2100, 140))]
    large = [((100_000, 5000), (100_000, 5200)), ((1_000_000, 50_000), (1_000_000, 50_300)),
             ((100_000_000, 5_000_000), (100_000_000, 5_003_000)),
             ((100_000_000, 50_000_000), (100_000_000, 49_990_000)),
             ((100_000_000, 50_000_000), (100_000_000, 50_000_000)),
             ((100_000_000, 10), (100_000_000, 25)),
             ((10_000_000, 1_000_000), (10_000_000, 1_010_000)),
             ((10_000_000, 1_000_000), (10_000_000, 996_000))]
    out = []
    for (n_c, x_c), (n_t, x_t) in small + large:
        a_c, b_c, a_t, b_t = 1 + x_c, 1 + n_c - x_c, 1 + x_t, 1 + n_t - x_t
        if (n_c, n_t) in [(n, m) for (n, _), (m, _) in small]:
            ref = ctbc_exact(a_t, b_t, a_c, b_c)
            if a_t + b_t + a_c + b_c < 800:
                q = ctbc_quad_mp(a_t, b_t, a_c, b_c)
                assert abs(q - ref) < mp.mpf(10) ** -20, ((n_c, x_c), (n_t, x_t), q, ref)
                cross_checks.append("chance to beat control: exact sum == mpmath quadrature")
            ref = float(ref)
        elif (n_c, x_c) == (n_t, x_t):
            ref = 0.5  # identical posteriors: exactly 1/2 by symmetry
        else:
            ref = float(ctbc_window_mp(a_t, b_t, a_c, b_c))
            # Independent check of the formula by integration (scipy's beta
            # functions limit this to ~1e-7 at 1e8 units).
            assert close(ctbc_quad_scipy(a_t, b_t, a_c, b_c), ref, 1e-6, 1e-12), ((n_c, x_c), (n_t, x_t))
            cross_checks.append("chance to beat control: 40-digit sum == scipy quadrature (1e-6)")
        out.append({"control": {"units": n_c, "conversions": x_c},
                    "treatment": {"units": n_t, "conversions": x_t}, "expected": ref})
    # The scipy quadrature agrees with the exact sum where both are possible.
    for (n_c, x_c), (n_t, x_t) in [((2000, 150), (2100, 140)), ((1000, 100), (1000, 120))]:
        a_c, b_c, a_t, b_t = 1 + x_c, 1 + n_c - x_c, 1 + x_t, 1 + n_t - x_t
        assert close(ctbc_quad_scipy(a_t, b_t, a_c, b_c), float(ctbc_exact(a_t, b_t, a_c, b_c)), 1e-9)
        cross_checks.append("chance to beat control: scipy quadrature == exact sum")
    return out


# ---------------------------------------------------------------- analyze (A/B/n)
def analyze_cases():
    out = []
    conv = [("control", 10_000, 1000), ("b", 10_000, 1080), ("c", 10_000, 1150), ("d", 9_800, 990),
            ("e", 10_100, 1010)]
    for k in [3, 5]:
        for correction, sm in [("holm", "holm"), ("benjamini_hochberg", "fdr_bh"), ("none", None)]:
            arms = conv[:k]
            p = [proportions_ztest([x, arms[0][2]], [n, arms[0][1]], prop_var=False)[1]
                 for _, n, x in arms[1:]]
            adj = list(multipletests(p, method=sm)[1]) if sm else p
            units = [n for _, n, _ in arms]
            weights = [1] * k
            srm_res = stats.chisquare(units, [sum(units) / k] * k)
            out.append({
                "request": {"metric": "conversion", "correction": correction,
                            "arms": [{"name": a, "units": n, "conversions": x} for a, n, x in arms]},
                "expected": {"confidence_intervals_adjusted": False,
                             "comparisons": [{"arm": arms[i + 1][0], "index": i + 1, "test": "z",
                                              "p_value": float(p[i]), "adjusted_p_value": float(adj[i])}
                                             for i in range(k - 1)],
                             "srm": {"df": k - 1, "statistic": float(srm_res.statistic),
                                     "p_value": float(srm_res.pvalue),
                                     "mismatch": bool(srm_res.pvalue < 0.001)}}})
    mean_arms = [arm_from(400, 5.0, 2.0), arm_from(420, 5.3, 2.2), arm_from(390, 4.9, 1.5),
                 arm_from(410, 5.6, 3.5)]
    p = [stats.ttest_ind_from_stats(moments(*a)[0], math.sqrt(moments(*a)[1]), a[0],
                                    moments(*mean_arms[0])[0], math.sqrt(moments(*mean_arms[0])[1]),
                                    mean_arms[0][0], equal_var=False).pvalue for a in mean_arms[1:]]
    units = [a[0] for a in mean_arms]
    weights = [33, 33, 34, 30]
    expected_units = [sum(units) * w / sum(weights) for w in weights]
    srm_res = stats.chisquare(units, expected_units)
    out.append({
        "request": {"metric": "mean", "weights": weights,
                    "arms": [{"name": f"arm{i}", "units": a[0], "sum": a[1], "sum_of_squares": a[2]}
                             for i, a in enumerate(mean_arms)]},
        "expected": {"comparisons": [{"index": i + 1, "test": "welch_t", "p_value": float(p[i]),
                                      "adjusted_p_value": float(multipletests(p, method="holm")[1][i]),
                                      "chance_to_beat_control": None} for i in range(3)],
                     "srm": {"statistic": float(srm_res.statistic), "p_value": float(srm_res.pvalue),
                             "mismatch": bool(srm_res.pvalue < 0.001)}}})
    return out


# ---------------------------------------------------------------- gbstats: ratios, Bayesian lift
GB_TESTS = {"two_sided": TwoSidedTTest, "greater": OneSidedTreatmentGreaterTTest,
            "less": OneSidedTreatmentLesserTTest}


def ratio_arm(n, m_mean, m_sd, d_mean, d_sd, corr):
    """Sufficient statistics of a ratio arm with these per-unit moments."""
    s_m, s_d = n * m_mean, n * d_mean
    return {"units": n,
            "numerator": {"sum": s_m, "sum_of_squares": (n - 1) * m_sd**2 + s_m * m_mean},
            "denominator": {"sum": s_d, "sum_of_squares": (n - 1) * d_sd**2 + s_d * d_mean},
            "sum_of_products": (n - 1) * corr * m_sd * d_sd + s_m * s_d / n}


def cuped_mean_arm(n, y_mean, y_sd, x_mean, x_sd, corr):
    """A mean arm with a covariate X (same metric before exposure), corr(X, Y) = corr."""
    _, s_y, ss_y = arm_from(n, y_mean, y_sd)
    _, s_x, ss_x = arm_from(n, x_mean, x_sd)
    return {"units": n, "sum": s_y, "sum_of_squares": ss_y,
            "covariate": {"sum": s_x, "sum_of_squares": ss_x,
                          "sum_of_products": (n - 1) * corr * x_sd * y_sd + s_x * s_y / n}}


def cuped_conversion_arm(n, converted, converted_before, both):
    return {"units": n, "conversions": converted,
            "covariate": {"sum": converted_before, "sum_of_products": both}}


def gb_statistic(metric, arm):
    if "covariate" in arm:
        post = gb_statistic(metric, {k: v for k, v in arm.items() if k != "covariate"})
        cov = arm["covariate"]
        if metric == "conversion":
            pre = ProportionStatistic(n=arm["units"], sum=cov["sum"])
        else:
            pre = SampleMeanStatistic(n=arm["units"], sum=cov["sum"], sum_squares=cov["sum_of_squares"])
        return RegressionAdjustedStatistic(n=arm["units"], post_statistic=post, pre_statistic=pre,
                                           post_pre_sum_of_products=cov["sum_of_products"], theta=0)
    if metric == "conversion":
        return ProportionStatistic(n=arm["units"], sum=arm["conversions"])
    if metric == "mean":
        return SampleMeanStatistic(n=arm["units"], sum=arm["sum"], sum_squares=arm["sum_of_squares"])
    side = lambda s: SampleMeanStatistic(n=arm["units"], sum=s["sum"], sum_squares=s["sum_of_squares"])
    return RatioStatistic(n=arm["units"], m_statistic=side(arm["numerator"]),
                          d_statistic=side(arm["denominator"]),
                          m_d_sum_of_products=arm["sum_of_products"])


def gb_frequentist(metric, c, t, alpha, alternative):
    """Difference, lift, intervals, t, df and p of gbstats' t-tests.

    gbstats reports p as 1 - cdf (losing small tails), so p is recomputed
    with scipy's t.sf from gbstats' own statistic and df, and checked against
    gbstats' value. gbstats 0.8.0's OneSidedTreatmentLesserTTest returns the
    upper bound estimate - width instead of estimate + width; the bound used
    is estimate + t_{1-alpha, df} sd, from gbstats' estimate, variance and df.
    """
    out = {}
    for kind in ["absolute", "relative"]:
        test = GB_TESTS[alternative](gb_statistic(metric, c), gb_statistic(metric, t),
                                     FrequentistConfig(alpha=alpha, difference_type=kind))
        r = test.compute_result()
        if r.error_message:
            return None
        sd = math.sqrt(test.variance)
        q = stats.t.isf(alpha / 2 if alternative == "two_sided" else alpha, test.dof)
        if alternative == "less":
            ci = interval(None, r.expected + q * sd, alternative)
        else:
            ci = interval(r.ci[0], r.ci[1], alternative)
        name = "difference" if kind == "absolute" else "relative_lift"
        out[name], out[name + "_ci"] = r.expected, ci
        if kind == "absolute":
            stat = test.critical_value
            p = {"two_sided": 2 * stats.t.sf(abs(stat), test.dof), "greater": stats.t.sf(stat, test.dof),
                 "less": stats.t.cdf(stat, test.dof)}[alternative]
            assert close(p, r.p_value, 1e-6, 1e-12), (p, r.p_value)
            out.update({"statistic": stat, "df": test.dof, "p_value": p})
    return out


def gb_bayesian(metric, c, t, alpha, alternative, prior):
    config = EffectBayesianConfig(alpha=alpha, difference_type="relative")
    if prior is not None:
        config = EffectBayesianConfig(alpha=alpha, difference_type="relative",
                                      prior_effect=GaussianPrior(mean=prior["mean"],
                                                                 variance=prior["variance"], proper=True))
    r = EffectBayesianABTest(gb_statistic(metric, c), gb_statistic(metric, t), config).compute_result()
    if r.error_message:
        return None
    mu, sd = r.uplift.mean, r.uplift.stddev
    if alternative == "two_sided":
        ci = {"lower": r.ci[0], "upper": r.ci[1]}
    else:  # gbstats' credible interval is two-sided; one-sided bounds from its posterior
        ci = interval(stats.norm.ppf(alpha, mu, sd), stats.norm.isf(alpha, mu, sd), alternative)
    return {"lift_mean": mu, "lift_sd": sd, "credible_interval": ci,
            "chance_to_beat_control": r.chance_to_win, "risk_control": r.risk[0],
            "risk_treatment": r.risk[1]}


def gb_cases():
    """Two-arm analyze requests of every kind against gbstats 0.8.0."""
    conv = lambda n, x: {"units": n, "conversions": x}
    mean = lambda n, m, sd: dict(zip(["units", "sum", "sum_of_squares"], arm_from(n, m, sd)))
    pairs = [
        ("ratio", ratio_arm(5000, 12.0, 30.0, 3.0, 2.0, 0.4), ratio_arm(5100, 12.9, 31.0, 3.05, 2.1, 0.45)),
        ("ratio", ratio_arm(300, 2.0, 1.5, 10.0, 4.0, -0.2), ratio_arm(280, 1.8, 1.4, 10.5, 4.2, 0.1)),
        ("ratio", ratio_arm(2_000_000, 0.51, 3.0, 1.7, 1.1, 0.7), ratio_arm(2_000_000, 0.515, 3.0, 1.7, 1.1, 0.7)),
        ("ratio", ratio_arm(40, 5.0, 2.0, 2.0, 0.5, 0.95), ratio_arm(45, 6.0, 2.5, 2.1, 0.6, 0.9)),
        ("mean", mean(4000, 24.5, 22.0), mean(4100, 25.3, 22.5)),
        ("mean", mean(50, 2.0, 1.0), mean(5000, 2.2, 9.0)),
        ("conversion", conv(10000, 1000), conv(10050, 1100)),
        ("conversion", conv(2000, 150), conv(2100, 140)),
        ("conversion", conv(500, 5), conv(500, 30)),  # a large effect: z about 4.5
        # CUPED: gbstats' RegressionAdjustedStatistic, theta from both arms.
        ("mean", cuped_mean_arm(4000, 24.5, 22.0, 23.0, 20.0, 0.7),
         cuped_mean_arm(4100, 25.3, 22.5, 23.1, 20.5, 0.72)),
        ("mean", cuped_mean_arm(300, 5.0, 2.0, 4.0, 3.0, -0.5),
         cuped_mean_arm(320, 5.4, 2.2, 4.1, 2.9, -0.45)),
        ("mean", cuped_mean_arm(1_000_000, 10.0, 8.0, 10.0, 8.0, 0.95),
         cuped_mean_arm(1_000_000, 10.02, 8.0, 10.0, 8.0, 0.95)),
        ("conversion", cuped_conversion_arm(10000, 1000, 900, 600),
         cuped_conversion_arm(10050, 1100, 905, 640)),
        ("conversion", cuped_conversion_arm(2000, 150, 20, 15),
         cuped_conversion_arm(2100, 140, 25, 10)),
    ]
    priors = [None, {"mean": 0.0, "variance": 0.01}, {"mean": 0.05, "variance": 0.0025}]
    out = []
    for i, (metric, c, t) in enumerate(pairs):
        for alternative in ["two_sided", "greater", "less"]:
            alpha = 0.05 if alternative == "two_sided" else 0.1
            prior = priors[i % len(priors)] if alternative == "two_sided" else None
            request = {"metric": metric, "alpha": alpha, "alternative": alternative,
                       "arms": [{"name": "control", **c}, {"name": "treatment", **t}]}
            if prior is not None:
                request["prior"] = prior
            a, b = gb_statistic(metric, c), gb_statistic(metric, t)
            # Conversions are tested by the pooled z-test (statsmodels, above),
            # not gbstats' t-test: here only their Bayesian view is checked,
            # unless CUPED adjusts them (then it is gbstats' t-test).
            cuped = "covariate" in c
            frequentist = {} if metric == "conversion" and not cuped \
                else gb_frequentist(metric, c, t, alpha, alternative)
            comparison = {**frequentist,
                          "bayesian": gb_bayesian(metric, c, t, alpha, alternative, prior)}
            if cuped:
                theta = compute_theta(a, b)
                adjusted = lambda s: RegressionAdjustedStatistic(
                    n=s.n, post_statistic=s.post_statistic, pre_statistic=s.pre_statistic,
                    post_pre_sum_of_products=s.post_pre_sum_of_products, theta=theta)
                a_adj, b_adj = adjusted(a), adjusted(b)
                before = a.post_statistic.variance / a.n + b.post_statistic.variance / b.n
                after = a_adj.variance / a.n + b_adj.variance / b.n
                comparison["cuped"] = {"theta": theta, "variance_reduction": 1 - after / before}
                a, b = a.post_statistic, b.post_statistic  # the arms' summaries are unadjusted
            else:
                comparison["cuped"] = None
            expected = {"arms": [{"mean": a.mean, "variance": a.variance},
                                 {"mean": b.mean, "variance": b.variance}],
                        "comparisons": [comparison]}
            out.append({"request": request, "expected": expected})
    # Degenerate inputs: gbstats' uninformative defaults are nulls here.
    flat = ratio_arm(100, 4.0, 0.0, 2.0, 0.0, 0.0)
    degenerate = [
        # No variance in either arm: no test, no posterior (gbstats: ZERO_NEGATIVE_VARIANCE).
        ("ratio", flat, flat),
        # A control mean of 0: no relative lift (gbstats: BASELINE_VARIATION_ZERO).
        ("mean", mean(100, 0.0, 1.0), mean(100, 0.3, 1.0)),
        # No conversions in the treatment: zero variance, so no posterior.
        ("conversion", conv(1000, 10), conv(1000, 0)),
        # A covariate without variance: theta 0, no adjustment (gbstats reverts to the metric).
        ("mean", {**mean(500, 3.0, 1.0), "covariate": {"sum": 500.0, "sum_of_squares": 500.0,
                                                       "sum_of_products": mean(500, 3.0, 1.0)["sum"]}},
         {**mean(500, 3.2, 1.1), "covariate": {"sum": 500.0, "sum_of_squares": 500.0,
                                               "sum_of_products": mean(500, 3.2, 1.1)["sum"]}}),
    ]
    for metric, c, t in degenerate:
        request = {"metric": metric, "arms": [{"name": "control", **c}, {"name": "treatment", **t}]}
        freq = gb_frequentist(metric, c, t, 0.05, "two_sided")
        bayes_ = gb_bayesian(metric, c, t, 0.05, "two_sided", None)
        assert (bayes_ is None) == ("covariate" not in c)
        expected = {"comparisons": [{"bayesian": bayes_}]}
        if freq is None and metric == "ratio":
            expected["comparisons"][0].update({"statistic": None, "p_value": None, "df": None})
        if "covariate" in c:
            assert compute_theta(gb_statistic(metric, c), gb_statistic(metric, t)) == 0
            expected["comparisons"][0].update({**freq, "cuped": {"theta": 0.0, "variance_reduction": 0.0}})
        out.append({"request": request, "expected": expected})
    return out


def gb_errors():
    """Ratio arms that cannot be statistics, with the error they must give."""
    good = ratio_arm(100, 4.0, 1.0, 2.0, 0.5, 0.3)
    zero_denominator = {**good, "denominator": {"sum": 0.0, "sum_of_squares": 0.0}, "sum_of_products": 0.0}
    too_correlated = {**good, "sum_of_products": good["sum_of_products"] + 99 * 1.0}
    negative = {**good, "numerator": {"sum": 400.0, "sum_of_squares": 10.0}}
    cases = [
        (zero_denominator, "arm 0 (\"control\"): the denominator's sum is 0: the ratio does not exist"),
        (too_correlated, "arm 0 (\"control\"): sum_of_products gives a covariance of"),
        (negative, "arm 0 (\"control\"): numerator: sum_of_squares (10) is below sum^2/units"),
    ]
    return [{"request": {"metric": "ratio", "arms": [{"name": "control", **c}, {"name": "treatment", **good}]},
             "error": message} for c, message in cases]


def main():
    fixtures = {
        "meta": {
            "generated_by": "tests/stats/generate_fixtures.py",
            "python": sys.version.split()[0], "scipy": scipy.__version__,
            "statsmodels": statsmodels.__version__, "numpy": np.__version__,
            "mpmath": mp.__version__,
            "gbstats": PINNED["gbstats"],
            "tolerance": "relative 1e-6, absolute 1e-9; integers and booleans exact",
        },
        **distributions(),
        "conversions": conversions(),
        "means": means(),
        "srm": srm(),
        "adjust": adjustments(),
        "sequential": sequential(),
        **planning(),
        "chance_to_beat_control": bayes(),
        "analyze": analyze_cases(),
        "gbstats": gb_cases(),
        "gbstats_errors": gb_errors(),
    }
    fixtures["meta"]["cross_checks"] = sorted(set(cross_checks))
    with open(os.path.join(HERE, "fixtures.json"), "w") as f:
        json.dump(fixtures, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote", os.path.join(HERE, "fixtures.json"), "cross-checks:", sorted(set(cross_checks)))


if __name__ == "__main__":
    main()
