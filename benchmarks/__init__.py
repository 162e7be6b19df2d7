"""Ratio benchmarks, run side by side in one process tree by `make bench`."""
