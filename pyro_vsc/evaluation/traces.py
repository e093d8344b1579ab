"""Traces of a guide and of the model replayed on it, the raw material of the evaluation metrics."""

import contextlib

import pyro
from pyro import poutine

#: Name of the plate that vectorizes evaluation samples (like Pyro's vectorized particles).
SAMPLE_PLATE = "evaluation_samples"


def _samples(num_samples, max_plate_nesting):
    if num_samples is None:
        return contextlib.nullcontext()
    return pyro.plate(SAMPLE_PLATE, int(num_samples), dim=-(max_plate_nesting + 1))


def trace_guide(guide, x, num_samples=None, max_plate_nesting=1):
    """Trace of ``guide(x)``; with ``num_samples`` every site draws that many vectorized samples
    in a plate at dimension ``-(max_plate_nesting + 1)``."""
    with _samples(num_samples, max_plate_nesting):
        return poutine.trace(guide).get_trace(x)


def guide_and_model_traces(model, guide, x, num_samples=None, max_plate_nesting=1):
    """Trace of ``guide(x)`` and of ``model(x)`` replayed on the guide's latent values.

    :returns: ``(guide_trace, model_trace)``, both with the sample plate of :func:`trace_guide`.
    """
    guide_trace = trace_guide(guide, x, num_samples, max_plate_nesting)
    with _samples(num_samples, max_plate_nesting):
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    return guide_trace, model_trace
