"""Benchmarks of the InitPipeline operator against baselines measured in the same run.

`uv run python -m bench` (or `make bench`); see bench/README.md.
"""
