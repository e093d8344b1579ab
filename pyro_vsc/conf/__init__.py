"""Hydra configuration of the command line (config groups: model, guide, elbo, data, experiment)."""
