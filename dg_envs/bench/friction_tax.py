"""What the frictions cost a learner: ``DGA2C.learn`` steps/s with all four frictions vs clean.

The setting of the distributed-DG paper's token task: ``TokenReversal-v0`` with H = 10, M = 2,
``n_envs`` sub-envs and ``n_steps`` steps each per update (the defaults, 100 x 10, give 100
answers per update), SB3's MLP policy, and the four frictions of the
``token-reversal-frictions`` experiment (:data:`ALL_FRICTIONS`: an actor 8 updates stale, a
landmine answer, a coin for the reward and a discovered answer). Two executions:

* ``vector``: the natively batched env and the batched frictions under SB3
  (:func:`dg_envs.vec_env.make_vec_env`): one policy forward per step for the stale actor;
* ``per-env``: SB3's ``DummyVecEnv`` of per-env friction wrappers (the way before the vector
  engine): one stale-actor forward and one snapshot per sub-env.

The ratio ``frictions / clean`` of each execution is the friction tax (1.0: free). Repeats
alternate between the settings, and medians are reported. :func:`time_paper_budget_run`
times one run at the papers' budget (10,000 updates of 100 answers).

>>> r = bench_friction_tax(quick=True, executions=("vector",))
>>> sorted(r["vector"])
['clean_steps_per_s', 'frictions_steps_per_s', 'ratio']
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from dg_envs.validation import check_bool, check_int

__all__ = ["ALL_FRICTIONS", "EXECUTIONS", "bench_friction_tax", "format_table", "time_paper_budget_run"]

#: The four frictions of ``token-reversal-frictions``'s "all" setting (``apply_frictions`` arguments).
ALL_FRICTIONS: dict[str, Any] = {
    "stale": 8,
    "bug": {"p": 0.1, "per": "episode"},
    "reward_corruption": {"p": 0.1, "per": "episode", "terminal_only": True},
    "discovery": {"p": 0.02, "per": "episode"},
}
EXECUTIONS = ("vector", "per-env")
ENV_ID = "dg_envs/TokenReversal-v0"


def make_token_venv(execution: str, frictions: dict[str, Any] | None, n_envs: int, length: int, seed: int):
    """An SB3 VecEnv of token reversal (H = ``length``, M = 2), clean or with ``frictions``."""
    env_kwargs = {"length": length, "vocab_size": 2}
    if execution == "vector":
        from dg_envs.vec_env import make_vec_env

        return make_vec_env(ENV_ID, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, frictions=frictions or None)
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    from dg_envs.wrappers import apply_frictions

    wrap = (lambda env: apply_frictions(env, **frictions)) if frictions else None
    return sb3_make_vec_env(ENV_ID, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, wrapper_class=wrap)


def _learn_rate(execution: str, frictions: dict[str, Any] | None, n_envs: int, n_steps: int, updates: int,
                length: int, seed: int) -> float:
    """Steps/s of one ``DGA2C.learn`` of ``updates`` updates (model building excluded)."""
    from dg_envs.algos import DGA2C

    venv = make_token_venv(execution, frictions, n_envs, length, seed)
    model = DGA2C("MlpPolicy", venv, n_steps=n_steps, seed=seed, device="cpu")
    steps = updates * n_envs * n_steps
    start = time.perf_counter()
    model.learn(steps)
    rate = steps / (time.perf_counter() - start)
    venv.close()
    return rate


def bench_friction_tax(
    n_envs: int = 100,
    n_steps: int = 10,
    updates: int = 30,
    repeats: int = 3,
    length: int = 10,
    executions: Sequence[str] = EXECUTIONS,
    quick: bool = False,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per execution: ``clean_steps_per_s``, ``frictions_steps_per_s`` (medians) and their ``ratio``.

    ``quick=True``: 2 updates, one repeat (a smoke test, not a measurement).
    """
    import torch

    n_envs, n_steps = check_int(n_envs, "n_envs", low=1), check_int(n_steps, "n_steps", low=1)
    updates, repeats = check_int(updates, "updates", low=1), check_int(repeats, "repeats", low=1)
    for execution in executions:
        if execution not in EXECUTIONS:
            raise ValueError(f"executions must be among {EXECUTIONS}, got {execution!r}")
    if check_bool(quick, "quick"):
        updates, repeats = 2, 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core per run, as the experiments train
    try:
        results = {}
        for execution in executions:
            rates: dict[str, list[float]] = {"clean": [], "frictions": []}
            for r in range(repeats):
                order = ("clean", "frictions") if r % 2 == 0 else ("frictions", "clean")
                for setting in order:
                    frictions = ALL_FRICTIONS if setting == "frictions" else None
                    rates[setting].append(_learn_rate(execution, frictions, n_envs, n_steps, updates, length, seed + r))
            clean, rough = statistics.median(rates["clean"]), statistics.median(rates["frictions"])
            results[execution] = {"clean_steps_per_s": clean, "frictions_steps_per_s": rough, "ratio": rough / clean}
    finally:
        torch.set_num_threads(threads)
    return results


def format_table(results: dict[str, dict[str, float]], n_envs: int = 100, n_steps: int = 10) -> str:
    """A plain-text table of :func:`bench_friction_tax`'s results."""
    lines = [f"DGA2C.learn on TokenReversal H=10 M=2, {n_envs} sub-envs x {n_steps} steps per update, one thread; "
             "all four frictions vs clean",
             f"{'execution':<10}  {'clean steps/s':>13}  {'frictions steps/s':>17}  {'ratio':>6}"]
    lines += [f"{name:<10}  {r['clean_steps_per_s']:>13,.0f}  {r['frictions_steps_per_s']:>17,.0f}  {r['ratio']:>6.2f}"
              for name, r in results.items()]
    return "\n".join(lines)


def time_paper_budget_run(updates: int = 10_000, n_envs: int = 100, n_steps: int = 10, length: int = 10,
                          seed: int = 0, eval_episodes: int = 1000) -> dict[str, float]:
    """Wall time of one run at the papers' budget: ``updates`` DGA2C updates of ``n_envs`` answers, all four frictions.

    Returns ``seconds`` (the whole ``learn``), ``steps`` and the greedy ``sequence_error`` on
    ``eval_episodes`` clean prompts afterwards. One torch thread, the vector execution.
    """
    import torch

    from dg_envs.algos import DGA2C
    from dg_envs.experiments.training import sequence_error

    torch.set_num_threads(1)
    venv = make_token_venv("vector", ALL_FRICTIONS, n_envs, length, seed)
    model = DGA2C("MlpPolicy", venv, n_steps=n_steps, seed=seed, device="cpu")
    steps = updates * n_envs * n_steps
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    error = sequence_error({"length": length, "vocab_size": 2}, episodes=eval_episodes)(model)
    venv.close()
    return {"seconds": seconds, "steps": float(steps), "steps_per_s": steps / seconds,
            "sequence_error": float(np.asarray(error))}
