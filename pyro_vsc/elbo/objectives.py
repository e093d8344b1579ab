"""The single place that maps an objective name to a Pyro ELBO (§3.3, eqs. 7 and 9; Table 1)."""

from pyro.infer import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

from .avg_elbo import AverageELBO
from .max_elbo import MaxELBO


def _max(num_particles, max_plate_nesting, analytic_kl, data_plate):
    return MaxELBO(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                   vectorize_particles=True, data_plate=data_plate, analytic_kl=analytic_kl)


def _avg(num_particles, max_plate_nesting, analytic_kl, data_plate):
    return AverageELBO(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                       vectorize_particles=True, data_plate=data_plate, analytic_kl=analytic_kl)


def _avg_pyro(num_particles, max_plate_nesting, analytic_kl, data_plate):
    elbo_class = TraceMeanField_ELBO if analytic_kl else Trace_ELBO
    return elbo_class(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                      vectorize_particles=True)


def _iwae(num_particles, max_plate_nesting, analytic_kl, data_plate):
    # Importance-weighted bound of Burda et al. (2016): Rényi divergence with α = 0. It always
    # uses the exact log-densities (analytic KLs do not apply to a log-mean-exp of weights).
    return RenyiELBO(alpha=0.0, num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                     vectorize_particles=True)


#: Objective name → ELBO factory.
#:
#: * ``max``: :class:`MaxELBO`, max over J particles per data point (eq. 9).
#: * ``avg``: :class:`AverageELBO`, average over J particles (eq. 7) with the registered (for
#:   thresholded laws: the paper's base) KLs, or with ``analytic_kl=False`` the log-density ratio
#:   that estimates the exact spike-and-slab KL; on the same tracing as ``max``.
#: * ``avg_pyro``: the same objective computed by Pyro's stock ELBOs, ``TraceMeanField_ELBO``
#:   (``Trace_ELBO`` with ``analytic_kl=False``): the reference users compare against; it reads
#:   its loss back to the host at every step, so training steps with it run eagerly.
#: * ``iwae``: ``RenyiELBO(alpha=0)``, the importance-weighted bound with J samples.
OBJECTIVES = {"max": _max, "avg": _avg, "avg_pyro": _avg_pyro, "iwae": _iwae}


def build_elbo(objective, num_particles=1, max_plate_nesting=1, analytic_kl=True, data_plate="data"):
    """Returns the Pyro ELBO for an objective name with J = ``num_particles`` vectorized particles.

    :param str objective: one of ``max``, ``avg``, ``avg_pyro``, ``iwae``.
    :param int num_particles: J ≥ 1.
    :param int max_plate_nesting: plates nested in the model (1: the data plate).
    :param bool analytic_kl: registered KLs (paper) vs. sampled log-density ratios (exact law).
    :param str data_plate: name of the data plate (used by ``max``).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {sorted(OBJECTIVES)}")
    if int(num_particles) != num_particles or num_particles < 1:
        raise ValueError(f"num_particles (J) must be an integer ≥ 1, got {num_particles}")
    return OBJECTIVES[objective](int(num_particles), max_plate_nesting, analytic_kl, data_plate)
