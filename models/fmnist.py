"""Fashion-MNIST generator of §4.2: the Table 5 decoder as a Pyro model."""

from .decoders import FashionMNISTDecoder
from .image_generator import ImageGenerator


class FashionMNISTSparseCoding(ImageGenerator):
    r"""z ~ p(z), x | z ~ N(f(z), σ² I) with f the Table 5 decoder; images (1, 28, 28), D = 784.

    Appendix E sweeps the latent dimension d from 64 to 4096 (Fig. 7); the default σ² = D/2 = 392
    makes the likelihood term the per-pixel MSE.

    :param prior: a :mod:`pyro_vsc.models.priors` module of latent dimension ``latent_dim``.
    :param int latent_dim: d.
    :param float noise_variance: σ²; ``None`` means D/2.
    """

    def __init__(self, prior, latent_dim=256, noise_variance=None):
        super().__init__(prior, FashionMNISTDecoder(latent_dim), noise_variance)
