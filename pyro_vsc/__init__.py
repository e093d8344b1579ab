"""pyro_vsc: Variational Sparse Coding with Learned Thresholding (Fallah & Rozell, 2022) in Pyro."""

__version__ = "0.1.0"
