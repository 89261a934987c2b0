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
    """Cost of a stepping configuration over ``n_envs`` sub-envs (per vector step and per sub-env step)."""

    label: str  #: the configuration
    env_steps_per_s: float  #: median over repeats of sub-env steps per second
    us_per_step: float  #: median microseconds per vector step (all sub-envs)
    ratio: float  #: us_per_step / the reference configuration's (the first of its group)


class _ConstantActor:
    """An Actor that answers ``action`` with log-prob 0: a policy forward that costs next to nothing."""

    def __init__(self, action: Any) -> None:
        self.action = action

    def __call__(self, obs: Any, rng: Any, noise_std: float = 0.0) -> tuple[Any, Any]:
        import numpy as np

        n = len(obs)
        return np.full(n, self.action, dtype=np.int64), np.zeros(n)


def _median_us(step: Callable[[], Any], n_steps: int, repeats: int) -> list[float]:
    runs = []
    for _ in range(repeats):
        start = _clock()
        for _ in range(n_steps):
            step()
        runs.append(1e6 * (_clock() - start) / n_steps)
    return runs


def _measure(
    configs: dict[str, Callable[[], Any]], n_envs: int, n_steps: dict[str, int], repeats: int, groups: dict[str, str]
) -> list[VecActorBenchResult]:
    """Interleaved repeats of each configuration's step (``n_steps[label]`` steps a repeat); medians; ratios to each group's reference."""
    for label, step in configs.items():  # warm-up
        _median_us(step, min(n_steps[label], 50), 1)
    runs: dict[str, list[float]] = {label: [] for label in configs}
    for _ in range(repeats):
        for label, step in configs.items():
            runs[label] += _median_us(step, n_steps[label], 1)
    medians = {label: statistics.median(r) for label, r in runs.items()}
    return [
        VecActorBenchResult(label, n_envs * 1e6 / med, med, med / medians[groups[label]])
        for label, med in medians.items()
    ]


def _print_rows(title: str, rows: Sequence[VecActorBenchResult]) -> None:
    print(title)
    width = max(len(r.label) for r in rows)
    print(f"{'configuration':<{width}}  {'env-steps/s':>11}  {'us/step':>8}  {'ratio':>6}")
    for r in rows:
        print(f"{r.label:<{width}}  {r.env_steps_per_s:>11,.0f}  {r.us_per_step:>8.1f}  {r.ratio:>6.2f}")


def bench_vec_actors(
    env_id: str = "dg_envs/TokenReversal-v0",
    n_envs: int = 100,
    n_steps: int = 200,
    repeats: int = 21,
    lag: int = 4,
    env_kwargs: dict[str, Any] | None = None,
    print_table: bool = True,
    seed: int = 0,
) -> list[VecActorBenchResult]:
    """A stale actor over ``n_envs`` sub-envs, per env vs batched, with a snapshot of an SB3 ``MlpPolicy``.

    Per env: :class:`~dg_envs.wrappers.StaleActor` in every sub-env of an SB3 ``DummyVecEnv``
    (one forward pass per sub-env per step). Batched: ``dg_envs.wrappers.vector.StaleActor``
    around ``gym.make_vec(env_id, vectorization_mode="vector_entry_point")`` when the id has a
    native vector env, else ``"sync"`` (one forward pass per step). Each is shown with its clean
    env; the same fixed actions; medians of interleaved repeats, CPU time.

    >>> rows = bench_vec_actors(n_envs=2, n_steps=5, repeats=1, print_table=False, env_kwargs={"length": 3})
    >>> [r.label for r in rows]
    ['DummyVecEnv', 'DummyVecEnv + per-env StaleActor', 'native vector env', 'native vector env + vector StaleActor']
    """
    import numpy as np
    from stable_baselines3.common.vec_env import DummyVecEnv

    from dg_envs.wrappers import vector

    kwargs = dict(env_kwargs or {})
    mode = "vector_entry_point" if gym.spec(env_id).vector_entry_point is not None else "sync"
    vector_label = "native vector env" if mode == "vector_entry_point" else "SyncVectorEnv"
    actor = _policy_actor(gym.make(env_id, **kwargs))
    clean_dummy = DummyVecEnv([lambda: gym.make(env_id, **kwargs)] * n_envs)
    stale_dummy = DummyVecEnv([lambda: StaleActor(gym.make(env_id, **kwargs), lag=lag)] * n_envs)
    clean_vector = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode, **kwargs)
    stale_vector = vector.StaleActor(gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode, **kwargs), lag=lag)
    for venv in (clean_dummy, stale_dummy):
        venv.seed(seed)
        push_policy_snapshot(venv, actor)
        venv.reset()
    for envs in (clean_vector, stale_vector):
        push_policy_snapshot(envs, actor)
        envs.reset(seed=seed)
    space = clean_dummy.action_space
    space.seed(seed)
    actions = np.stack([space.sample() for _ in range(n_envs)])  # the same fixed actions for all
    configs = {
        "DummyVecEnv": lambda: clean_dummy.step(actions),
        "DummyVecEnv + per-env StaleActor": lambda: stale_dummy.step(actions),
        vector_label: lambda: clean_vector.step(actions),
        f"{vector_label} + vector StaleActor": lambda: stale_vector.step(actions),
    }
    groups = {label: ("DummyVecEnv" if label.startswith("DummyVecEnv") else vector_label) for label in configs}
    steps = {label: n_steps for label in configs}
    steps["DummyVecEnv + per-env StaleActor"] = max(n_steps // 20, 1)
    rows = _measure(configs, n_envs, steps, repeats, groups)
    for envs in (clean_dummy, stale_dummy, clean_vector, stale_vector):
        envs.close()
    if print_table:
        _print_rows(f"{env_id} x {n_envs} sub-envs, StaleActor(lag={lag}) with an SB3 MlpPolicy snapshot, CPU time; "
                    f"median of {repeats} repeats x {n_steps} vector steps", rows)
    return rows


#: The token-reversal experiment's friction settings (:mod:`dg_envs.experiments.token_reversal_frictions`).
EXPERIMENT_FRICTIONS: dict[str, Any] = {
    "stale": 8,
    "bug": {"p": 0.1, "per": "episode"},
    "reward_corruption": {"p": 0.1, "per": "episode", "terminal_only": True},
    "discovery": {"p": 0.01, "per": "episode"},
}


def bench_vector_stack(
    env_id: str = "dg_envs/TokenReversal-v0",
    n_envs: int = 100,
    n_steps: int = 500,
    repeats: int = 21,
    frictions: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    print_table: bool = True,
    seed: int = 0,
) -> list[VecActorBenchResult]:
    """The batched stack of :data:`EXPERIMENT_FRICTIONS` (or ``frictions``) vs the clean native vector env.

    The policy-driven actor acts with a constant :class:`~dg_envs.wrappers.Actor` (a forward
    pass that costs next to nothing), so the figure is the frictions' own cost; each friction
    alone is shown too. For reference, Gymnasium's vector ``RecordEpisodeStatistics`` on the
    same env. Medians of interleaved repeats, CPU time.

    >>> rows = bench_vector_stack(n_envs=4, n_steps=5, repeats=1, print_table=False, env_kwargs={"length": 3})
    >>> [r.label for r in rows][:2], rows[0].ratio
    (['clean', 'stack'], 1.0)
    """
    import numpy as np
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    from dg_envs.wrappers import apply_frictions

    frictions = dict(EXPERIMENT_FRICTIONS if frictions is None else frictions)

    def make(**chosen: Any) -> Any:
        envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **(env_kwargs or {}))
        envs = apply_frictions(envs, **chosen)
        push_policy_snapshot(envs, _ConstantActor(1))
        envs.reset(seed=seed)
        return envs

    stacks = {"clean": make(), "stack": make(**frictions)}
    stacks.update({name: make(**{name: value}) for name, value in frictions.items()})
    stacks["RecordEpisodeStatistics (Gymnasium)"] = RecordEpisodeStatistics(make())
    stacks["RecordEpisodeStatistics (Gymnasium)"].reset(seed=seed)
    actions = np.ones(n_envs, dtype=np.int64)
    configs = {label: (lambda envs=envs: envs.step(actions)) for label, envs in stacks.items()}
    rows = _measure(configs, n_envs, {label: n_steps for label in configs}, repeats, {label: "clean" for label in configs})
    if print_table:
        _print_rows(f"{env_id} x {n_envs} sub-envs (native vector env), frictions {frictions}, constant actor, CPU time; "
                    f"median of {repeats} repeats x {n_steps} vector steps", rows)
    return rows
