"""Evaluation metrics of §4 and Appendix C, as functions of arrays and tensors."""

from .collapse import feature_collapse, posterior_collapse
from .dictionary_recovery import MATCH_COSINE, recovered_fraction
from .estimated_dictionary import estimate_linear_dictionary, sort_by_norm
from .gradient_snr import GradientSNR, flatten_gradients
from .iwae_bound import iwae_bound
from .multi_information import PAPER_BIN_EDGES, discretize_codes, multi_information
from .point_biserial import point_biserial_correlation
from .psis_diagnostic import MIN_PSIS_SAMPLES, fraction_khat_above, psis_khat
from .sparse_coding_objective import sparse_coding_objective
from .support_consistency import active_atom_mask, support_consistency

__all__ = [
    "MATCH_COSINE",
    "MIN_PSIS_SAMPLES",
    "PAPER_BIN_EDGES",
    "GradientSNR",
    "active_atom_mask",
    "discretize_codes",
    "estimate_linear_dictionary",
    "feature_collapse",
    "flatten_gradients",
    "fraction_khat_above",
    "iwae_bound",
    "multi_information",
    "point_biserial_correlation",
    "posterior_collapse",
    "psis_khat",
    "recovered_fraction",
    "sort_by_norm",
    "sparse_coding_objective",
    "support_consistency",
]
