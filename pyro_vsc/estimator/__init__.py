"""Use it as a library on your own vectors: :class:`VariationalSparseCoder`, a scikit-learn
estimator (needs scikit-learn: ``pip install 'pyro-vsc[sklearn]'``), and
:class:`~pyro_vsc.estimator.training.VectorTraining`, the training of in-memory vectors it is
built on (no scikit-learn)."""


def __getattr__(name):
    if name == "VariationalSparseCoder":  # imported on use: scikit-learn is optional
        from .sparse_coder import VariationalSparseCoder
        return VariationalSparseCoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["VariationalSparseCoder"]
