"""Benchmark scripts (run with ``python -m benchmarks.<name>``); not part of the installed package."""
