"""Average-over-particles ELBO (§3.3, eq. 7) on the particle tracing of the max ELBO."""

from .max_elbo import ParticleTraceELBO


class AverageELBO(ParticleTraceELBO):
    r"""ELBO averaged over J particles (eq. 7), the objective Fig. 5 compares with eq. (9).

    :math:`\frac1J\sum_j\sum_k\mathcal L^{j,k}` with the per-particle, per-data-point ELBO
    :math:`\mathcal L^{j,k}` of eq. (6), plus the particle average of the terms outside the data
    plate: the loss of Pyro's ``TraceMeanField_ELBO`` (analytic KLs) or ``Trace_ELBO``
    (``analytic_kl=False``) on reparameterized sites, with the same random draws. It is computed
    on :class:`~pyro_vsc.elbo.max_elbo.ParticleTraceELBO`'s tracing, like :class:`MaxELBO`: no
    log-density that the analytic KLs make unnecessary, no host synchronisation (Pyro's ELBOs read
    the loss back for their NaN warning), so training steps are recorded and replayed, and
    :meth:`particle_elbo` gives the per-site terms the training loop's divergence check reads.
    Pyro's own ELBOs stay available as ``elbo=avg_pyro``.

    Parameters: those of :class:`~pyro_vsc.elbo.max_elbo.ParticleTraceELBO`.
    """

    def particle_elbo(self, model, guide, *args, **kwargs):
        """Evaluates eq. (6) for every particle and data point and averages over particles.

        :rtype: ~pyro_vsc.elbo.max_elbo.ParticleELBO (``best`` is ``None``)
        """
        local, global_terms, site_terms, traces = self.particle_terms(model, guide, *args, **kwargs)
        per_particle = local.sum(1)
        if global_terms is None:
            global_terms = local.new_zeros(local.shape[0])
        else:
            per_particle = per_particle + global_terms
        return self._result(local, global_terms, site_terms, traces, None, -per_particle.mean())
