"""Benchmarks: ``make bench`` runs every ``bench/bench_*.py`` module's ``main()``.

Each benchmark reports ratios against a baseline measured in the same process,
so the figures compare across machines. ``python -m bench NAME`` runs one.
"""
