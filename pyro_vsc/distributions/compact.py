r"""Computing on distinct parameter values under particle expansion (§3.3, vectorized particles).

With J vectorized particles Pyro expands every site's distribution along the particle plate
(``fn.expand``): each parameter becomes a view that repeats its values J times with stride 0,
and the data plate does the same with a prior's constants. What depends on the parameters
alone (the KLs of Appendix B, the spike mass :math:`\log(1-\gamma)` of eq. 3, the shift and
scale of a reparameterized sample) needs evaluating once per distinct value, broadcasting the
result at the end: the same values and gradients without the J-fold work.

:func:`compact_parameters` is the one way the library gets a distribution's parameters in that
form, from either of two sources:

* a distribution that keeps its parameters as they were given, before broadcasting and
  ``expand`` (a ``compact_params`` mapping of name to tensor: the thresholded laws of
  :class:`~pyro_vsc.distributions.ThresholdedDistribution`), hands those over;
* of any other distribution (Pyro's ``Normal``, ``Laplace``, ``Gamma``, the spike-and-slab),
  each parameter is narrowed to size 1 along the dimensions where it is broadcast (:func:`compact`).

Keeping the given tensors is the cheaper source for parameters that need gradients: the
backward pass of a narrowing writes a full-size zero tensor (the slice's adjoint) that the
expansion's backward then sums, while a given tensor receives its gradient directly. Results
are broadcast back with :func:`broadcast_to_batch`.
"""

import torch


def compact(tensor):
    """``tensor`` narrowed to size 1 along every dimension where it is broadcast (stride 0):
    a view that holds each distinct value once and broadcasts back to ``tensor``. Returns
    ``tensor`` itself when no dimension is broadcast."""
    broadcast = [size > 1 and stride == 0 for size, stride in zip(tensor.shape, tensor.stride())]
    if not any(broadcast):
        return tensor
    return tensor[tuple(slice(0, 1) if narrowed else slice(None) for narrowed in broadcast)]


def compact_parameters(distribution, names):
    """The parameters ``names`` of ``distribution`` in compact form: as the distribution was
    given them where it keeps them (its ``compact_params`` mapping), else its attributes, each
    through :func:`compact`."""
    given = getattr(distribution, "compact_params", {})
    return tuple(compact(given[name] if name in given else getattr(distribution, name))
                 for name in names)


def broadcast_to_batch(result, batch_shape):
    """A result computed on compact parameters, broadcast to (at least) ``batch_shape``
    (``result`` itself where it has that shape already)."""
    shape = torch.broadcast_shapes(result.shape, batch_shape)
    return result if result.shape == shape else result.expand(shape)
