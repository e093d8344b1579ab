"""What a site's distribution is, under Pyro's wrappers (``.to_event``, masks, expansions)."""

from pyro.distributions import Delta
from torch.distributions import Independent

from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution

_WRAPPERS = (Independent, MaskedDistribution, ExpandedDistribution)


def base_distribution(fn):
    """The distribution inside any ``Independent``, masking or expanding wrappers: the
    per-dimension law."""
    while isinstance(fn, _WRAPPERS):
        fn = fn.base_dist
    return fn


def is_point_mass(fn):
    """Whether a site's distribution is a ``Delta``: a point estimate (the FISTA guide), which
    has no density with respect to Lebesgue measure, no KL to a continuous prior and no
    sampling noise."""
    return isinstance(base_distribution(fn), Delta)
