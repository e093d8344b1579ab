"""The first ``size`` items of a dataset, the way Appendix E's fixed-size splits are taken."""

from torch.utils.data import Dataset, Subset


def leading_subset(dataset: Dataset, size: int, description: str) -> Subset:
    """Return ``Subset(dataset, range(size))``, failing clearly when ``size`` is out of range.

    The authors' published data loader takes ``torch.arange(n)`` of each split, i.e. the first
    ``n`` items in file order, not a random draw; this does the same so that the split is fixed.

    :param dataset: a map-style dataset with ``len``.
    :param int size: number of leading items to keep, ``1 <= size <= len(dataset)``.
    :param str description: what ``dataset`` is, for the error message (e.g. "CelebA 'train' partition in /data/celeba").
    """
    available = len(dataset)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= available:
        raise ValueError(
            f"asked for {size!r} samples of the {description}, which holds {available}; "
            f"choose a size between 1 and {available}"
        )
    return Subset(dataset, range(size))
