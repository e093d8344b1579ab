"""Aggregation of evaluated runs into the paper's tables and figures (``python -m pyro_vsc.report``)."""
