"""Benchmarks of the operator on the real sandbox (``make bench``, see README.md)."""
