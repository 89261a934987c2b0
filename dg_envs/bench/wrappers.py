"""Cost of each friction wrapper: steps/s wrapped vs unwrapped, in one run.

Every configuration wraps a fresh ``gym.make(env_id)`` (Gymnasium's default wrappers
included) and is stepped with uniformly random actions (sampled before the clock starts),
resetting when an episode ends; the
unwrapped env is measured in the same run. Repeats are interleaved across configurations so
that a slow moment of the machine hits all alike; medians over repeats are reported, as the
ratio ``wrapped steps/s / unwrapped steps/s`` and as the added microseconds per step. Time is
this process's CPU time (``time.process_time``), so other jobs on a shared machine do not
enter the figures, and the defaults are many short interleaved slices (41 x 2,000 steps):
on a busy 2-core machine, 5 x 20,000 steps gave medians that moved by +-15% between runs.

Each friction that needs no policy should keep >= 0.8 of the unwrapped speed
(:data:`MIN_RATIO`); a stack of several (``"bug+reward+discovery"``) is shown for reference,
marked ``stack``: it pays for each of its wrappers. The policy-driven actors (stale, mismatched) run one forward pass of a
snapshot of an SB3 ``MlpPolicy`` (64x64) per step, on a batch of one; their cost is reported
in microseconds per step.

>>> results = bench_wrappers(n_steps=200, repeats=1, print_table=False, configs=("bug", "stale"))
>>> [r.label for r in results]
['unwrapped', 'bug', 'stale']
>>> results[0].ratio
1.0
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

import dg_envs  # noqa: F401 - registers the ids
from dg_envs.wrappers import (
    BuggyActor,
    MismatchedActor,
    RareDiscovery,
    RewardCorruption,
    SB3PolicyActor,
    StaleActor,
    apply_frictions,
    push_policy_snapshot,
)

#: The speed every friction that needs no policy must keep, relative to the unwrapped env.
MIN_RATIO = 0.8

#: The clock: this process's CPU time, not wall time. The machines this runs on are shared
#: (tests of other work in parallel on 2 cores); wall-clock medians moved by +-20% between runs
#: there, CPU time does not count the time other processes hold the core.
_clock = time.process_time


def _oracle(env: gym.Env) -> Callable[[Any], Any] | None:
    try:
        env.get_wrapper_attr("optimal_action")
        return None
    except AttributeError:
        zero = env.action_space.sample() * 0  # a cheap constant expert: the bench measures the wrapper
        return lambda obs: zero


def _policy_actor(env: gym.Env) -> SB3PolicyActor:
    from stable_baselines3.common.policies import ActorCriticPolicy

    policy = ActorCriticPolicy(env.observation_space, env.action_space, lr_schedule=lambda _: 3e-4)
    return SB3PolicyActor(policy)


def _with_snapshot(wrapped: gym.Env, env: gym.Env) -> gym.Env:
    push_policy_snapshot(wrapped, _policy_actor(env))
    return wrapped


#: label -> (wrap(env) -> wrapped env, needs a policy). p = 0.5 so that half the steps fire.
CONFIGS: dict[str, tuple[Callable[[gym.Env], gym.Env], bool]] = {
    "bug": (lambda env: BuggyActor(env, p=0.5), False),
    "bug_random": (lambda env: BuggyActor(env, p=0.5, bug="random"), False),
    "bug_episode": (lambda env: BuggyActor(env, p=0.5, per="episode"), False),
    "reward_coin": (lambda env: RewardCorruption(env, p=0.5), False),
    "reward_gaussian": (lambda env: RewardCorruption(env, p=0.5, mode="gaussian"), False),
    "discovery": (lambda env: RareDiscovery(env, p=0.5, oracle=_oracle(env)), False),
    "bug+reward+discovery": (
        lambda env: apply_frictions(env, bug=0.5, reward_corruption=0.5, discovery={"p": 0.1, "oracle": _oracle(env)}),
        False,
    ),
    "stale": (lambda env: _with_snapshot(StaleActor(env, lag=4), env), True),
    "mismatch": (lambda env: _with_snapshot(MismatchedActor(env, noise_std=1.0), env), True),
}


@dataclass
class WrapperBenchResult:
    """Throughput of one friction configuration."""

    label: str  #: the configuration ("unwrapped" for the reference)
    steps_per_s: float  #: median over repeats of steps per second (resets included)
    ratio: float  #: steps_per_s / the unwrapped env's steps_per_s in the same run
    us_per_step: float  #: added cost per step in microseconds (from the medians)
    needs_policy: bool  #: a policy-driven actor (one forward pass per step)
    repeats: list[float] = field(default_factory=list)  #: steps per second of each repeat


def _steps_per_second(env: gym.Env, n_steps: int, seed: int) -> float:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    # Actions drawn before the clock starts: sampling is not the env's cost, and timing it
    # would dilute the wrappers' overhead.
    actions = [env.action_space.sample() for _ in range(1024)]
    step, reset = env.step, env.reset
    start = _clock()
    for i in range(n_steps):
        _, _, terminated, truncated, _ = step(actions[i & 1023])
        if terminated or truncated:
            reset()
    return n_steps / (_clock() - start)


def bench_wrappers(
    env_id: str = "CartPole-v1",
    n_steps: int = 2_000,
    repeats: int = 41,
    configs: Sequence[str] | None = None,
    print_table: bool = True,
    seed: int = 0,
) -> list[WrapperBenchResult]:
    """Measure steps/s of ``env_id`` unwrapped and under each friction in ``configs`` (default: all of :data:`CONFIGS`).

    Returns one :class:`WrapperBenchResult` per configuration, the unwrapped env first (ratio 1.0).
    Policy-driven configurations step ``n_steps // 10`` steps per repeat (they are ~100x slower).
    """
    if n_steps < 1 or repeats < 1:
        raise ValueError(f"n_steps and repeats must be >= 1, got n_steps={n_steps}, repeats={repeats}")
    labels = list(CONFIGS) if configs is None else list(configs)
    unknown = [label for label in labels if label not in CONFIGS]
    if unknown:
        raise ValueError(f"configs: unknown {unknown}; accepted: {list(CONFIGS)}")
    envs = [gym.make(env_id)] + [CONFIGS[label][0](gym.make(env_id)) for label in labels]
    steps = [n_steps] + [max(n_steps // 10, 1) if CONFIGS[label][1] else n_steps for label in labels]
    for env, n in zip(envs, steps):  # warm-up: first-call checks, torch's first forward
        _steps_per_second(env, min(n, 500), seed)
    runs: list[list[float]] = [[] for _ in envs]
    for r in range(repeats):
        for i, (env, n) in enumerate(zip(envs, steps)):
            runs[i].append(_steps_per_second(env, n, seed + r))
    for env in envs:
        env.close()
    medians = [statistics.median(x) for x in runs]
    results = [
        WrapperBenchResult(
            label,
            med,
            med / medians[0],
            1e6 * (1 / med - 1 / medians[0]),
            label != "unwrapped" and CONFIGS[label][1],
            runs[i],
        )
        for i, (label, med) in enumerate(zip(["unwrapped"] + labels, medians))
    ]
    if print_table:
        print(format_table(results, env_id, n_steps, repeats))
    return results


def is_stack(label: str) -> bool:
    """Whether a configuration stacks several frictions (judged as a whole, not against MIN_RATIO)."""
    return "+" in label


def format_table(results: Sequence[WrapperBenchResult], env_id: str, n_steps: int, repeats: int) -> str:
    """A plain-text table of the results."""
    width = max(len(r.label) for r in results)
    lines = [
        f"{env_id}, pre-sampled random actions, resets included, CPU time; median of {repeats} repeats x {n_steps} steps "
        f"(policy-driven: x {max(n_steps // 10, 1)}); p = 0.5",
        f"{'friction':<{width}}  {'steps/s':>10}  {'ratio':>6}  {'+us/step':>9}  {'':>6}",
    ]
    for r in results:
        verdict = "" if r.label == "unwrapped" else "policy" if r.needs_policy else "stack" if is_stack(r.label) else (
            "ok" if r.ratio >= MIN_RATIO else "SLOW")
        lines.append(f"{r.label:<{width}}  {r.steps_per_s:>10,.0f}  {r.ratio:>6.2f}  {r.us_per_step:>9.1f}  {verdict:>6}")
    return "\n".join(lines)


@dataclass
class VecActorBenchResult:
    """Cost of a policy-driven actor across the sub-envs of a ``DummyVecEnv``."""

    label: str  #: "unwrapped", "per-env StaleActor" or "VecStaleActor (batched)"
    env_steps_per_s: float  #: median over repeats of sub-env steps per second
    us_per_env_step: float  #: added cost per sub-env step in microseconds (from the medians)


def bench_vec_actors(
    env_id: str = "CartPole-v1",
    n_envs: int = 8,
    n_steps: int = 1_000,
    repeats: int = 41,
    lag: int = 4,
    print_table: bool = True,
    seed: int = 0,
) -> list[VecActorBenchResult]:
    """Per-env :class:`~dg_envs.wrappers.StaleActor` (one forward per sub-env) vs the batched
    :class:`~dg_envs.wrappers.VecStaleActor` (one forward per vector step), on ``n_envs``
    sub-envs of a ``DummyVecEnv``; ``n_steps`` vector steps per repeat, medians over repeats.

    >>> rows = bench_vec_actors(n_envs=2, n_steps=20, repeats=1, print_table=False)
    >>> [r.label for r in rows]
    ['unwrapped', 'per-env StaleActor', 'VecStaleActor (batched)']
    """
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env

    from dg_envs.wrappers import VecStaleActor

    actor = _policy_actor(gym.make(env_id))
    venvs = {
        "unwrapped": make_vec_env(env_id, n_envs=n_envs, seed=seed),
        "per-env StaleActor": make_vec_env(env_id, n_envs=n_envs, seed=seed, wrapper_class=StaleActor, wrapper_kwargs={"lag": lag}),
        "VecStaleActor (batched)": VecStaleActor(make_vec_env(env_id, n_envs=n_envs, seed=seed), lag=lag),
    }
    for venv in venvs.values():
        push_policy_snapshot(venv, actor)
        venv.reset()
    space = venvs["unwrapped"].action_space
    space.seed(seed)
    actions = [np.stack([space.sample() for _ in range(n_envs)]) for _ in range(64)]

    def env_steps_per_second(venv: Any, n: int) -> float:
        start = _clock()
        for i in range(n):
            venv.step(actions[i & 63])
        return n * n_envs / (_clock() - start)

    for venv in venvs.values():  # warm-up
        env_steps_per_second(venv, min(n_steps, 50))
    runs: dict[str, list[float]] = {label: [] for label in venvs}
    for _ in range(repeats):
        for label, venv in venvs.items():
            runs[label].append(env_steps_per_second(venv, n_steps))
    for venv in venvs.values():
        venv.close()
    base = statistics.median(runs["unwrapped"])
    rows = [
        VecActorBenchResult(label, statistics.median(r), 1e6 * (1 / statistics.median(r) - 1 / base))
        for label, r in runs.items()
    ]
    if print_table:
        print(f"{env_id}, DummyVecEnv x {n_envs}, lag {lag}, CPU time; median of {repeats} repeats x {n_steps} vector steps")
        print(f"{'actor':<24}  {'env-steps/s':>11}  {'+us/env-step':>12}")
        for r in rows:
            print(f"{r.label:<24}  {r.env_steps_per_s:>11,.0f}  {r.us_per_env_step:>12.1f}")
    return rows
