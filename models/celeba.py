"""CelebA generator of §4.2: the Table 4 decoder as a Pyro model."""

from .decoders import CelebADecoder
from .image_generator import ImageGenerator


class CelebASparseCoding(ImageGenerator):
    r"""z ~ p(z), x | z ~ N(f(z), σ² I) with f the Table 4 decoder; images (3, 64, 64), D = 12288.

    Appendix E sweeps the latent dimension d from 64 to 4096 (Fig. 7, Figs. 19-23; Figs. 6 and 8
    use d = 512); the default σ² = D/2 = 6144 makes the likelihood term the per-pixel MSE.

    :param prior: a :mod:`pyro_vsc.models.priors` module of latent dimension ``latent_dim``.
    :param int latent_dim: d.
    :param float noise_variance: σ²; ``None`` means D/2.
    """

    def __init__(self, prior, latent_dim=512, noise_variance=None):
        super().__init__(prior, CelebADecoder(latent_dim), noise_variance)
