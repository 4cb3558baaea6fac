"""Benchmarks behind `storenode bench`."""
