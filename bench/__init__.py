"""Benchmarks: `make bench` runs bench.ingest and bench.stats; they print figures and assert nothing."""
