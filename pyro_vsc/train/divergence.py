"""Detecting non-finite losses, ELBO terms and gradients (divergence) at the step they happen.

Table 2 of the paper reports runs that "failed due to gradients equal to NaN" (the subgradient
estimator of Appendix C with J = 1). A training step produces a *health vector*: the loss, the
sum of every ELBO site term (the likelihood ``x``, the KLs of ``z`` and ``threshold``, when the
objective exposes them) and the sum of every parameter's gradient. A sum is NaN or ±inf when
something it adds is (NaN propagates, inf + finite = inf, inf - inf = NaN), so one ``isfinite``
over the vector tells whether the step is healthy and which entries are not. (A sum of finite
values overflows only beyond 3.4e38, which no healthy step reaches.) Sums are the cheapest such
reduction: about 0.1 ms per step for the 1.6 M gradients of the paper's linear model on 2 CPU
cores, where the largest absolute value (``torch._foreach_norm(..., inf)``) costs 2.3 ms.

Two ways to use it (the policies of :mod:`pyro_vsc.train.divergence_policy`):

* :meth:`DivergenceMonitor.observe` (policy ``stop``) keeps, on the device and without any host
  read, the index and the non-finite entries of the *first* unhealthy step; the training loop
  reads them with :meth:`DivergenceMonitor.first_divergence` where it reads the host anyway (the
  progress interval, checkpoints, the epoch's end).
* :meth:`DivergenceMonitor.nonfinite` (policy ``skip``) reads the verdict of the current step at
  once (one host synchronisation per step), so that the loop can skip the update.
"""

import torch

class TrainingDiverged(RuntimeError):
    """A run stopped because the loss, an ELBO term or a gradient was NaN or infinite.

    :ivar dict record: the ``diverged`` record written to ``metrics.jsonl``.
    """

    def __init__(self, message, record):
        super().__init__(message)
        self.record = record


class DivergenceMonitor:
    """Finds non-finite values in the loss, the ELBO site terms and the gradients of a step.

    :meth:`observe` keeps each step's health vector on the device; every ``fold_every``
    consecutive steps (and before any host read) they are reduced, with a few device operations,
    into the record of the first unhealthy step, so that a step costs only its health vector.

    :param named_params: ``(name, parameter)`` pairs whose gradients are checked, or an empty
        list to check the loss and ELBO terms only (float16 training, whose gradient scaler
        handles overflowing gradients by itself).
    :param int fold_every: steps whose health vectors are reduced together.
    """

    def __init__(self, named_params, fold_every=64):
        self.named_params = list(named_params)
        self.fold_every = int(fold_every)
        self._layout = None           # entry names of the health vectors being observed
        self._pending = []            # device: health vectors of consecutive steps not yet folded
        self._pending_start = None    # the step of the first pending vector
        self._first_step = None       # device: step index of the first unhealthy step, or -1
        self._first_bad = None        # device: its non-finite entries
        self._found = None            # host: (step, names) once read
        self._names = {}              # (site names, which gradients exist) → entry names

    def health(self, loss, site_terms=None):
        """``(names, values)``: the step's health vector and the name of each entry."""
        site_terms = site_terms or {}
        grads = [p.grad for _, p in self.named_params]
        key = (tuple(site_terms), tuple(grad is not None for grad in grads))
        names = self._names.get(key)
        if names is None:  # the entries changed (the first step): name them once
            names = self._names[key] = (
                "loss", *(f"ELBO term '{site}'" for site in site_terms),
                *(f"gradient of {name}" for (name, _), grad in zip(self.named_params, grads) if grad is not None))
        with torch.no_grad():
            values = torch.stack([loss.reshape(()), *(term.sum() for term in site_terms.values()),
                                  *(grad.sum() for grad in grads if grad is not None)])
        return names, values if values.dtype == torch.float32 else values.float()

    def nonfinite(self, loss, site_terms=None):
        """Names of the non-finite entries of this step's health vector (reads the host)."""
        names, values = self.health(loss, site_terms)
        bad = ~torch.isfinite(values)
        if not bool(bad.any()):
            return []
        return [name for name, flag in zip(names, bad.tolist()) if flag]

    def observe(self, step, loss, site_terms=None):
        """Remembers ``step`` if it is the first unhealthy one, without reading the host."""
        if self._found is not None:
            return
        names, values = self.health(loss, site_terms)
        if names != self._layout:
            self._settle()  # the entries changed (first step): read what was recorded so far
            if self._found is not None:
                return
            self._layout = names
            self._first_step = torch.full((), -1, dtype=torch.long, device=values.device)
            self._first_bad = torch.zeros(len(names), dtype=torch.bool, device=values.device)
        elif self._pending and step != self._pending_start + len(self._pending):
            self._fold()
        if not self._pending:
            self._pending_start = step
        self._pending.append(values)
        if len(self._pending) >= self.fold_every:
            self._fold()

    def _fold(self):
        """Reduces the pending health vectors into the first-divergence record (device only)."""
        if not self._pending:
            return
        bad = ~torch.isfinite(torch.stack(self._pending))        # (steps, entries)
        unhealthy = bad.any(1)
        row = unhealthy.to(torch.uint8).argmax().reshape(1)      # the first unhealthy step
        first = unhealthy.any() & (self._first_step < 0)
        self._first_step = torch.where(first, row[0] + self._pending_start, self._first_step)
        self._first_bad = torch.where(first, bad.index_select(0, row)[0], self._first_bad)
        self._pending = []

    def _settle(self):
        self._fold()
        if self._first_step is None or self._found is not None:
            return
        step = int(self._first_step)
        if step >= 0:
            self._found = (step, [name for name, flag in zip(self._layout, self._first_bad.tolist())
                                  if flag])

    def first_divergence(self):
        """``(step, names of the non-finite entries)`` of the first unhealthy step observed, or
        ``None``; reads the host."""
        self._settle()
        return self._found
