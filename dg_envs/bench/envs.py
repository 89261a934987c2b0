"""Steps per second of every dg_envs environment, relative to Gymnasium's CartPole-v1.

Each env is built with ``gym.make`` (so Gymnasium's default wrappers are included, as in any
user's code) and stepped with uniformly random actions, resetting whenever an episode ends:
for one-step bandits every step therefore includes a reset. The repeats are interleaved
across envs so that a slow moment of the machine hits every env alike, and the median over
repeats is reported.

>>> results = bench_envs(n_steps=200, repeats=1, print_table=False)
>>> [r.env_id for r in results][0], results[0].ratio
('CartPole-v1', 1.0)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

import dg_envs  # noqa: F401 - registers the ids
from dg_envs.envs import ENV_IDS

REFERENCE_ID = "CartPole-v1"

#: Benchmarked configurations: (label, env id, make kwargs). MNIST uses the offline source so
#: that the benchmark needs no download; the per-step cost does not depend on the source.
DEFAULT_CONFIGS: tuple[tuple[str, str, Mapping[str, Any]], ...] = tuple(
    (env_id, env_id, {"source": "offline"} if "MNIST" in env_id else {}) for env_id in ENV_IDS
)


@dataclass
class BenchResult:
    """Throughput of one env configuration."""

    env_id: str  #: label of the configuration (the env id for the defaults)
    steps_per_s: float  #: median over repeats of steps per second (resets included)
    ratio: float  #: steps_per_s / CartPole-v1's steps_per_s in the same run
    repeats: list[float] = field(default_factory=list)  #: steps per second of each repeat


def _steps_per_second(env: gym.Env, n_steps: int, seed: int) -> float:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    sample, step, reset = env.action_space.sample, env.step, env.reset
    start = time.perf_counter()
    for _ in range(n_steps):
        _, _, terminated, truncated, _ = step(sample())
        if terminated or truncated:
            reset()
    return n_steps / (time.perf_counter() - start)


def bench_envs(
    n_steps: int = 20_000,
    repeats: int = 5,
    configs: Sequence[tuple[str, str, Mapping[str, Any]]] = DEFAULT_CONFIGS,
    print_table: bool = True,
    seed: int = 0,
) -> list[BenchResult]:
    """Measure steps/s of CartPole-v1 and of each config; return one :class:`BenchResult` each.

    The first result is CartPole-v1 (ratio 1.0). With ``print_table`` a table of
    steps/s and ratios is printed.
    """
    if n_steps < 1 or repeats < 1:
        raise ValueError(f"n_steps and repeats must be >= 1, got n_steps={n_steps}, repeats={repeats}")
    all_configs = [(REFERENCE_ID, REFERENCE_ID, {})] + list(configs)
    envs = [gym.make(env_id, **kwargs) for _, env_id, kwargs in all_configs]
    for env in envs:  # warm-up: data loading, first-call checks of the passive env checker
        _steps_per_second(env, min(n_steps, 1000), seed)
    runs: list[list[float]] = [[] for _ in envs]
    for r in range(repeats):
        for i, env in enumerate(envs):
            runs[i].append(_steps_per_second(env, n_steps, seed + r))
    for env in envs:
        env.close()
    medians = [statistics.median(x) for x in runs]
    results = [
        BenchResult(label, med, med / medians[0], runs[i])
        for i, ((label, _, _), med) in enumerate(zip(all_configs, medians))
    ]
    if print_table:
        print(format_table(results, n_steps, repeats))
    return results


def format_table(results: Sequence[BenchResult], n_steps: int, repeats: int) -> str:
    """A plain-text table of the results."""
    width = max(len(r.env_id) for r in results)
    lines = [
        f"random actions, resets included; median of {repeats} repeats x {n_steps} steps",
        f"{'env':<{width}}  {'steps/s':>10}  {'vs CartPole':>11}",
    ]
    lines += [f"{r.env_id:<{width}}  {r.steps_per_s:>10,.0f}  {r.ratio:>11.2f}" for r in results]
    return "\n".join(lines)
