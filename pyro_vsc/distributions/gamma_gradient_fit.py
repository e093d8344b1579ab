r"""The fit behind :mod:`pyro_vsc.distributions.gamma_gradient_table` (the Gamma pathwise gradient).

``python -m pyro_vsc.distributions.gamma_gradient_fit`` recomputes the table from scipy's
incomplete gamma function and rewrites ``gamma_gradient_table.py``; it prints the largest
relative error on a validation grid. Needs scipy and numpy only (about ten seconds).

**What is fitted.** For :math:`z\sim\Gamma(\alpha,1)`, :math:`\alpha\ge1`, the pathwise
(implicit reparameterization) gradient is the unique one of a one-dimensional transport,

.. math:: \frac{dz}{d\alpha} = -\frac{\partial_\alpha P(\alpha,z)}{p(z;\alpha)},

with :math:`P` the regularized lower incomplete gamma function and :math:`p` the density
(Figurnov et al., 2018; Jankowiak & Obermeyer, 2018). Its relative form
:math:`R = z^{-1}\,dz/d\alpha` is written in Marsaglia & Tsang's variables
:math:`d=\alpha-\tfrac13`, :math:`s=d^{-1/2}`, :math:`y=(z/d)^{1/3}`, :math:`\varepsilon=3(y-1)/s`,
:math:`t=\log y`, :math:`e=\varepsilon/8`:

.. math:: R = s^2\Big[1-\tfrac{s\varepsilon}{2}-s^2\big(P_s(e)+t\,L_s(e)\big)\Big].

The bracket's first two terms are the exact limit :math:`\alpha\to\infty` (the Wilson-Hilferty
transport); :math:`P_s` and :math:`L_s` are polynomials in :math:`e` of degrees :data:`NP` and
:data:`NL` whose coefficients are Chebyshev series of degree :data:`K` in
:math:`\sigma = 2s/s_{\max}-1`, :math:`s_{\max}=(2/3)^{-1/2}` (:math:`\alpha=1`). The term in
:math:`t` carries the logarithmic singularity at :math:`z\to0`, where the exact
:math:`R\to(\psi(\alpha)+1/\alpha-\log z)/\alpha` is linear in :math:`t`; there the fitted form is
linear in :math:`t` too, so it extrapolates below the fitted quantiles with a bounded relative
error.

**Data.** For 200 values of :math:`s` between :math:`\alpha=10^5` and :math:`\alpha=1` and the
quantiles :math:`10^{-30}\ldots1-10^{-20}` of each :math:`\Gamma(\alpha)` (and, for α < 2, which the
recurrence of α < 1 evaluates far in the lower tail, points far below,
:math:`z=z_{10^{-30}}\cdot10^{-5},10^{-20},10^{-100}`, from the exact small-:math:`z` series),
the reference gradient is a four-point central difference in :math:`\alpha` of scipy's
``gammainc`` (below the mode) or ``gammaincc`` (above), accurate to about 1e-9 relative.
Coefficients minimise the squared *relative* error of :math:`R`. Above :math:`\alpha=10^5` the
correction term is below 1e-7 and the fitted series, multiplied by :math:`s^2`, vanishes with
:math:`s`.
"""

import argparse
from pathlib import Path

import numpy as np
from numpy.polynomial import chebyshev
from scipy import special, stats

#: Polynomial degrees of :math:`P_s` and :math:`L_s`, and Chebyshev degree in σ.
NP, NL, K = 10, 5, 14
#: :math:`s` at α = 1 and at α = 1e5 (the fitted range).
S_MAX = 1.0 / np.sqrt(2.0 / 3.0)
S_MIN = 1.0 / np.sqrt(1e5 - 1.0 / 3.0)

TABLE_PATH = Path(__file__).with_name("gamma_gradient_table.py")


def reference_gradient(z, alpha):
    r"""dz/dα of Γ(α, 1) at z: a four-point central difference of scipy's incomplete gamma
    (``gammainc`` below the mode, ``gammaincc`` above, so that the difference is taken of the
    smaller tail), divided by the density. Relative accuracy about 1e-9 for 1 ≤ α ≤ 1e5."""
    z, alpha = np.broadcast_arrays(np.asarray(z, float), np.asarray(alpha, float))
    h = 2e-3 * np.sqrt(alpha) * np.minimum(1.0, np.sqrt(alpha))
    lower = z < alpha

    def tail(a):
        return np.where(lower, special.gammainc(a, z), -special.gammaincc(a, z))

    d_tail = (-tail(alpha + 2 * h) + 8 * tail(alpha + h) - 8 * tail(alpha - h) + tail(alpha - 2 * h)) / (12 * h)
    log_density = (alpha - 1) * np.log(z) - z - special.gammaln(alpha)
    return -d_tail / np.exp(log_density)


def small_z_gradient(z, alpha, terms=12):
    r"""dz/dα for small z from the series :math:`P = z^\alpha\sum_i(-z)^i/(i!(\alpha+i)\Gamma(\alpha))`:
    :math:`dz/d\alpha = z e^z\,(s_2-(\log z-\psi(\alpha))s_1)`, :math:`s_k=\sum_i(-z)^i/(i!(\alpha+i)^k)`."""
    z, alpha = np.broadcast_arrays(np.asarray(z, float), np.asarray(alpha, float))
    s1, s2, term = np.zeros_like(z), np.zeros_like(z), np.ones_like(z)
    for i in range(terms):
        if i:
            term = term * (-z) / i
        s1 = s1 + term / (alpha + i)
        s2 = s2 + term / (alpha + i) ** 2
    return z * np.exp(z) * (s2 - (np.log(z) - special.digamma(alpha)) * s1)


def variables(z, alpha):
    """(s, e, t) of the fitted form for samples z of Γ(α)."""
    d = alpha - 1.0 / 3.0
    s = 1.0 / np.sqrt(d)
    t = (np.log(z) - np.log(d)) / 3.0
    e = 3.0 * (np.exp(t) - 1.0) / s / 8.0
    return s, e, t


def design(s, e, t):
    """Columns of the correction :math:`s^2(P_s(e)+tL_s(e))`, coefficient (n, k) at n·(K+1) + k."""
    chebyshev_s = chebyshev.chebvander(2.0 * s / S_MAX - 1.0, K) * (s * s)[:, None]
    columns = [chebyshev_s * (e**n)[:, None] for n in range(NP + 1)]
    columns += [chebyshev_s * (t * e**m)[:, None] for m in range(NL + 1)]
    return np.concatenate(columns, axis=1)


def evaluate(table, z, alpha):
    """R = (dz/dα)/z from a table of shape (NP + NL + 2, K + 1) (float64 numpy)."""
    s, e, t = variables(z, alpha)
    return s * s * (1.0 - 4.0 * s * e - design(s, e, t) @ table.reshape(-1))


def samples(s_values, lower_exponents, upper_exponents, deep=()):
    """(z, α, reference R) on quantile grids of Γ(α) for every s."""
    zs, alphas, refs = [], [], []
    for s in s_values:
        alpha = 1.0 / s**2 + 1.0 / 3.0
        lower = stats.gamma.ppf(10.0 ** np.asarray(lower_exponents), alpha)
        upper = stats.gamma.isf(10.0 ** np.asarray(upper_exponents), alpha)
        middle = stats.gamma.ppf(np.linspace(0.1, 0.9, 33), alpha)
        z = np.concatenate([lower, middle, upper])
        # far below the quantiles only where α < 2 reaches there (the recurrence for α < 1)
        deep_z = lower.min() * 10.0 ** -np.asarray(deep if alpha < 2.0 else (), float)
        deep_z = deep_z[deep_z > 1e-300]
        zs += [z, deep_z]
        alphas += [np.full(len(z) + len(deep_z), alpha)]
        refs += [reference_gradient(z, alpha) / z, small_z_gradient(deep_z, alpha) / deep_z]
    return np.concatenate(zs), np.concatenate(alphas), np.concatenate(refs)


def fit():
    """The least-squares table, the range of e it was fitted on (rounded outwards to 0.01) and
    the validation error (largest relative error of R)."""
    theta = np.linspace(0.0, np.pi, 200)
    s_values = S_MIN + (S_MAX - S_MIN) * (1.0 - np.cos(theta)) / 2.0
    z, alpha, ref = samples(s_values, np.linspace(-30, -1, 60), np.linspace(-1, -20, 40), deep=(5, 20, 100))
    s, e, t = variables(z, alpha)
    target = 1.0 - 4.0 * s * e - ref / (s * s)  # the correction s²(P + tL)
    scale = s * s / ref  # minimises the relative error of R
    table = np.linalg.lstsq(design(s, e, t) * scale[:, None], target * scale, rcond=None)[0]
    table = table.reshape(NP + NL + 2, K + 1)
    zv, alphav, refv = samples(np.linspace(S_MIN * 1.01, S_MAX, 157), np.linspace(-29.5, -1.5, 29),
                               np.linspace(-1.5, -19.5, 19), deep=(10, 50))
    error = np.abs(evaluate(table, zv, alphav) / refv - 1.0).max()
    e_range = (float(np.floor(e.min() * 100) / 100), float(np.ceil(e.max() * 100) / 100))
    return table, e_range, error


def digamma_series():
    r"""Chebyshev coefficients in σ (degree K) of :math:`\psi(\alpha)-\log(\alpha-\tfrac13)`, which
    the recurrence of α < 1 needs at α + 1; it vanishes like :math:`-s^2/6` as α → ∞ (error
    below 1e-9 for α ≥ 1)."""

    def function(sigma):
        s = (sigma + 1.0) * S_MAX / 2.0
        value = np.zeros_like(s)
        d = 1.0 / s[s > 0] ** 2
        value[s > 0] = special.digamma(d + 1.0 / 3.0) - np.log(d)
        return value

    return chebyshev.chebinterpolate(function, K)


def _numbers(values):
    return ", ".join(repr(float(v)) for v in values)


def write_table(table, e_range, error, path=TABLE_PATH):
    rows = ",\n".join(f"    ({_numbers(row)})" for row in table)
    path.write_text(
        '"""Table of the Gamma pathwise gradient (generated by\n'
        "``python -m pyro_vsc.distributions.gamma_gradient_fit``; see that module for the form).\n\n"
        f"Largest relative error of dz/dα on the validation grid (float64): {error:.1e}.\n"
        '"""\n\n'
        f"NP, NL, K = {NP}, {NL}, {K}\n"
        f"S_MAX = {float(S_MAX)!r}\n"
        f"#: Range of e in the fitted data (the evaluation clamps e to it).\nE_RANGE = {e_range!r}\n\n"
        "#: TABLE[n][k]: Chebyshev coefficient k of the coefficient of e**n in P (n <= NP), of t·e**(n-NP-1)\n"
        "#: in L (n > NP).\n"
        f"TABLE = (\n{rows},\n)\n\n"
        "#: Chebyshev coefficients of ψ(α) - log(α - 1/3) (the recurrence of α < 1).\n"
        f"DIGAMMA = ({_numbers(digamma_series())})\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=TABLE_PATH)
    args = parser.parse_args(argv)
    table, e_range, error = fit()
    write_table(table, e_range, error, args.output)
    print(f"wrote {args.output}; largest relative error of dz/dα on the validation grid: {error:.2e}")


if __name__ == "__main__":
    main()
