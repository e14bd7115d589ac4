#!/usr/bin/env python3
"""Writes tests/stats/guardrail_fixtures.json: reference values for
flags-core's one-sided guardrail test (stats::guardrail::relative_harm).

Usage (Python 3.11):
    pip install scipy mpmath
    python3 tests/stats/generate_guardrail_fixtures.py

The reference is the definition, not the closed form the Rust code uses:
the one-sided mixture likelihood ratio

    L = integral over theta > 0 of  N(x; theta, V) / N(x; 0, V)  *  2 phi(theta / tau) / tau

is integrated numerically with mpmath at 60 digits (and cross-checked with
scipy.integrate.quad where double precision does not overflow). The contrast
x and its variance V come from the sides' sufficient statistics as written in
flags-core/src/stats/guardrail.rs's module doc; tau^2 from the mixture
variance formula of docs/statistics.md (GrowthBook's tuning, S = planned
total units). The p-value is min(previous, min(1, 1/L)).
"""

import json
import math
import os
import sys

import mpmath as mp
import scipy
from scipy import integrate

mp.mp.dps = 60
HERE = os.path.dirname(os.path.abspath(__file__))


def moments(side):
    if side["kind"] == "conversion":
        n, x = side["units"], side["conversions"]
        p = mp.mpf(x) / n
        return mp.mpf(n), p, p * (1 - p)
    n, s, ss = side["units"], mp.mpf(side["sum"]), mp.mpf(side["sum_of_squares"])
    mean = s / n
    return mp.mpf(n), mean, (ss - s * s / n) / (n - 1)


def mixture_lr(x, V, tau2):
    """L by quadrature of the half-normal mixture, at 60 digits."""
    tau = mp.sqrt(tau2)

    def integrand(theta):
        return mp.exp((theta * x - theta**2 / 2) / V) * 2 * mp.npdf(theta / tau) / tau

    # The integrand peaks near theta = x tau^2 / (V + tau^2); split there.
    peak = max(mp.mpf(0), x * tau2 / (V + tau2))
    width = mp.sqrt(V * tau2 / (V + tau2))
    points = [mp.mpf(0)] + [peak + k * width for k in (1, 4, 16) if peak + k * width > 0] + [mp.inf]
    return mp.quad(integrand, sorted(set(points)))


def scipy_lr(x, V, tau2):
    """The same integral in double precision (None where it would overflow)."""
    x, V, tau = float(x), float(V), math.sqrt(float(tau2))
    if x * x / V > 600:
        return None
    value, _ = integrate.quad(
        lambda t: math.exp((t * x - t * t / 2) / V) * 2 * math.exp(-t * t / (2 * tau * tau))
        / (tau * math.sqrt(2 * math.pi)), 0, math.inf, epsabs=0, epsrel=1e-12, limit=500)
    return value


def case(control, treatment, margin, harm, alpha, planned, tau2, previous):
    n_c, m_c, v_c = moments(control)
    n_t, m_t, v_t = moments(treatment)
    scale = 1 + mp.mpf(margin) if harm == "increase" else 1 - mp.mpf(margin)
    x = m_t - scale * m_c if harm == "increase" else scale * m_c - m_t
    V = v_t / n_t + scale**2 * v_c / n_c
    if tau2 is None:
        rho2 = (-2 * mp.log(alpha) + mp.log(1 - 2 * mp.log(alpha))) / planned
        tau2_used = rho2 * (n_c + n_t) * V
    else:
        tau2_used = mp.mpf(tau2)
    L = mixture_lr(x, V, tau2_used)
    check = scipy_lr(x, V, tau2_used)
    if check is not None and check > 1e-300:
        assert abs(check / float(L) - 1) < 1e-7, (control, treatment, check, L)
    p = min(mp.mpf(1), 1 / L)
    if previous is not None:
        p = min(p, mp.mpf(previous))
    strip = lambda side: {k: v for k, v in side.items() if k != "kind"}
    return {
        "control": strip(control), "treatment": strip(treatment), "margin": margin,
        "harm": harm, "alpha": alpha,
        "sequential": {"planned_total_units": planned, "tau_squared": tau2},
        "previous": previous,
        "expected": {
            "control_mean": float(m_c), "treatment_mean": float(m_t), "excess": float(x),
            "p_value": float(p), "ln_likelihood_ratio": float(mp.log(L)),
            "tau_squared": float(tau2_used),
        },
    }


def conv(n, x):
    return {"kind": "conversion", "units": n, "conversions": x}


def mean(n, mu, sd):
    return {"kind": "mean", "units": n, "sum": n * mu, "sum_of_squares": (n - 1) * sd**2 + n * mu**2}


CASES = [
    # errors tripled: clear harm
    (conv(1000, 20), conv(1000, 60), 0.0, "increase", 0.05, 5000, None, None),
    # within the tolerated 10%
    (conv(5000, 100), conv(5000, 105), 0.1, "increase", 0.05, 5000, None, None),
    # treatment better: no evidence at all (p = 1)
    (conv(2000, 80), conv(2000, 40), 0.0, "increase", 0.05, 5000, None, None),
    # far below the margin: L tiny, Phi deep in its tail
    (conv(100_000, 10_000), conv(100_000, 5_000), 0.0, "increase", 0.05, 5000, None, None),
    # running minimum from an earlier look
    (conv(1000, 20), conv(1000, 22), 0.0, "increase", 0.05, 5000, None, 0.03),
    # an explicit mixture variance
    (conv(3000, 90), conv(3000, 120), 0.05, "increase", 0.1, 5000, 1e-5, None),
    # revenue down 20% with 5% tolerated
    (mean(800, 10.0, 4.0), mean(820, 8.0, 4.0), 0.05, "decrease", 0.05, 5000, None, None),
    # revenue up: no harm
    (mean(800, 10.0, 4.0), mean(820, 10.5, 4.0), 0.05, "decrease", 0.05, 5000, None, None),
    # latency up 2%, large samples
    (mean(200_000, 120.0, 40.0), mean(200_000, 122.4, 41.0), 0.0, "increase", 0.01, 100_000, None, None),
]


def main():
    out = {
        "meta": {
            "generated_by": "tests/stats/generate_guardrail_fixtures.py",
            "python": sys.version.split()[0], "scipy": scipy.__version__,
            "mpmath": mp.__version__,
            "tolerance": "relative 1e-9, absolute 1e-12",
        },
        "relative_harm": [case(*c) for c in CASES],
    }
    path = os.path.join(HERE, "guardrail_fixtures.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
