"""Reproducible benchmarks for crmload: the port wall, throughput against peers, limiter precision and memory.

Run ``python -m benchmarks [--quick] [--only NAME] [--out DIR] [--report-only]``. Each scenario starts its
own mock CRM server in a separate process (inside a fresh network namespace when run as root), runs every
contender as a subprocess interleaved A B C A B C, writes raw JSON under ``benchmarks/results/`` and prints
medians and ratios. ``benchmarks.report`` renders ``BENCHMARKS.md`` and the PNG plots from that JSON. Plain
test runs
never run benchmarks; ``tests/integration/test_bench_smoke.py`` runs one tiny scenario.
"""

from __future__ import annotations
