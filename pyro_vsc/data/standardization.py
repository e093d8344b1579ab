"""Train/validation splits of vectors standardised with the training statistics only.

The authors' code shifts and scales every coordinate of the 16×16 patches (§4.1, Appendix D) by
its mean and standard deviation over the training patches, for both sets; prepared vectors
(``data=arrays``) are standardised the same way. The validation set never contributes to the
statistics, so its numbers are those of data the model has not seen.
"""

from dataclasses import dataclass

import numpy as np
import torch

_CHUNK_ROWS = 8192


def column_mean_std(rows):
    """Per-column mean and population standard deviation of ``rows`` (n, D), in float64.

    Two passes over chunks of rows, so that no float64 copy of all rows is made (``rows`` may be
    float32 or a memory-mapped array).
    """
    chunks = range(0, len(rows), _CHUNK_ROWS)
    total = sum(rows[start:start + _CHUNK_ROWS].sum(0, dtype=np.float64) for start in chunks)
    mean = total / len(rows)
    squares = sum(((rows[start:start + _CHUNK_ROWS] - mean) ** 2).sum(0) for start in chunks)
    return mean, np.sqrt(squares / len(rows))


@dataclass(frozen=True, eq=False)
class StandardizedSplit:
    """Training and validation vectors, each coordinate mapped by ``(value - mean) / std``.

    :ivar train: float32 ``(num_train, D)``.
    :ivar val: float32 ``(num_val, D)``.
    :ivar mean: float32 ``(D,)``, the training mean subtracted from both sets (zeros if not
        standardised).
    :ivar std: float32 ``(D,)``, the training standard deviation divided out (ones if not
        standardised).
    :ivar source: where the vectors come from.
    :ivar standardized: whether the training statistics were applied.
    """

    train: torch.Tensor
    val: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    source: str
    standardized: bool

    def unstandardize(self, vectors):
        """Undo the standardisation: ``vectors * std + mean`` on the vectors' device and dtype."""
        return vectors * self.std.to(vectors) + self.mean.to(vectors)
