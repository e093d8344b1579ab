"""Metrics of a trained model and guide (§4.1, Appendix C): the model/guide-level layer on top of
the array functions of :mod:`pyro_vsc.metrics`, used by ``python -m pyro_vsc.evaluate``."""

from .consistency import guide_support_consistency
from .gradient_snr import gradient_snr, per_point_gradient_moments
from .importance_sampling import importance_sampling_metrics, khat_per_point, summarize_log_weights
from .importance_weights import importance_log_weights
from .methods import METHOD_LABELS, describe_run, method_of
from .objective import objective_metrics
from .posterior_kl import posterior_kl_per_dimension
from .trained_run import TrainedRun, divergence_reason, load_trained_run
from .warmups import finish_warmups

__all__ = [
    "METHOD_LABELS",
    "TrainedRun",
    "describe_run",
    "divergence_reason",
    "finish_warmups",
    "gradient_snr",
    "guide_support_consistency",
    "importance_log_weights",
    "importance_sampling_metrics",
    "khat_per_point",
    "load_trained_run",
    "method_of",
    "objective_metrics",
    "per_point_gradient_moments",
    "posterior_kl_per_dimension",
    "summarize_log_weights",
]
