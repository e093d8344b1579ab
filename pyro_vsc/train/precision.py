"""Mixed precision for the networks only (Appendix E: "automatic mixed precision").

Only the encoder and decoder run under ``torch.autocast``; their outputs are cast back to
float32 before any distribution sees them, so the thresholding (eq. 2), the straight-through
estimator (eq. 4), the KLs and every log-density are computed in float32. In float16 the
Gaussian log-likelihood of a CelebA image (a sum over 12,288 pixels) and the spike mass
log(1 - γ) near γ → 0 would lose most of their digits; in float32 they do not.

float16 needs a gradient scaler (small activation gradients underflow in float16): the loss is
multiplied by the scale before backpropagation and the gradients divided by it before the
optimizer step, which is skipped when they overflowed. bfloat16 has float32's exponent range and
needs none.
"""

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

#: ``amp`` config values → autocast dtype.
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(amp, device):
    """The autocast dtype for the ``amp`` setting on ``device``, or ``None`` for float32.

    On a CPU, ``fp16`` is ignored with a warning (the paper's AMP is a CUDA feature, and CPU
    autocast computes in bfloat16); ``bf16`` uses CPU autocast, which is only faster on CPUs with
    bfloat16 instructions.

    :param amp: ``False``/``None`` (float32), ``"bf16"`` or ``"fp16"``.
    :param torch.device device: the training device.
    """
    if amp is None or amp is False:
        return None
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be false, bf16 or fp16, got {amp!r}")
    if device.type == "cpu" and amp == "fp16":
        log.warning("amp=fp16 is ignored on the CPU (training in float32); use amp=bf16 for CPU "
                    "autocast or a CUDA device for float16")
        return None
    return AMP_DTYPES[amp]


def grad_scaler(amp_dtype, device):
    """A ``torch.amp.GradScaler`` for float16 training, else ``None``."""
    if amp_dtype == torch.float16:
        return torch.amp.GradScaler(device.type)
    return None


def _to_float32(output):
    if torch.is_tensor(output):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, dict):
        return {key: _to_float32(value) for key, value in output.items()}
    if isinstance(output, (tuple, list)):
        return type(output)(_to_float32(value) for value in output)
    return output


class AutocastNetwork(nn.Module):
    """Runs ``network`` under ``torch.autocast`` and returns its outputs in float32.

    Outputs may be a tensor or a dict/tuple/list of tensors (an encoder's head outputs).

    :param network: the wrapped module (its parameters stay float32).
    :param str device_type: ``"cuda"`` or ``"cpu"``.
    :param dtype: ``torch.float16`` or ``torch.bfloat16``.
    """

    def __init__(self, network, device_type, dtype):
        super().__init__()
        self.network, self.device_type, self.dtype = network, device_type, dtype

    def forward(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=self.dtype):
            output = self.network(*args, **kwargs)
        return _to_float32(output)
