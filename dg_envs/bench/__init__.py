"""Benchmarks: environment throughput (:func:`dg_envs.bench.envs.bench_envs`)."""

from dg_envs.bench.envs import BenchResult, bench_envs

__all__ = ["BenchResult", "bench_envs"]
