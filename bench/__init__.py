"""Benchmarks, run by `make bench`; each prints a table and ratios against a same-run baseline."""
