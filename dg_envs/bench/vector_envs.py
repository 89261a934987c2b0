"""Steps per second of the native vector envs against SB3's ``DummyVecEnv`` of the single env.

Both run ``num_envs`` sub-envs for ``n_steps`` batched steps on the same pre-drawn random
actions (the policy's cost is left out), after one warm-up run; steps are counted per
sub-env (``num_envs * n_steps / seconds``). ``DummyVecEnv`` resets a finished sub-env inside
the same step, and so does the vector env in its default mode here, ``SAME_STEP``: the same
work per step, and the mode :func:`dg_envs.vec_env.make_vec_env` uses. (In Gymnasium's default
``NEXT_STEP`` mode a reset takes a step of its own, so for one-step bandits half of the steps
would be resets and the ratio would flatter the vector env.) The repeats alternate between
the two so that a slow moment of the machine hits both, and the median is reported.

>>> results = bench_vector_envs(num_envs=8, quick=True)
>>> sorted(results) == sorted(ENV_IDS), sorted(results["dg_envs/TokenReversal-v0"])
(True, ['dummy_steps_per_s', 'ratio', 'vector_steps_per_s'])
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from dg_envs.envs import ENV_IDS
from dg_envs.validation import check_bool, check_int

__all__ = ["DEFAULT_CONFIGS", "bench_vector_envs", "format_table"]

#: (env id, kwargs): every id at its defaults; MNIST from the offline digits (no download; the
#: per-step cost does not depend on the source).
DEFAULT_CONFIGS: tuple[tuple[str, Mapping[str, Any]], ...] = tuple(
    (env_id, {"source": "offline"} if "MNIST" in env_id else {}) for env_id in ENV_IDS
)


def _steps_per_second(step, reset, actions: np.ndarray) -> float:
    reset()
    start = time.perf_counter()
    for a in actions:
        step(a)
    return actions.size / (time.perf_counter() - start)


def bench_vector_envs(
    num_envs: int = 1000,
    n_steps: int = 200,
    repeats: int = 3,
    quick: bool = False,
    autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP,
    configs: Sequence[tuple[str, Mapping[str, Any]]] = DEFAULT_CONFIGS,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per env id: ``vector_steps_per_s``, ``dummy_steps_per_s`` (medians over ``repeats``) and their ``ratio``.

    ``quick=True`` caps the run at 20 steps and one repeat (a smoke test, not a measurement).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv

    import dg_envs  # noqa: F401 - registers the ids

    num_envs = check_int(num_envs, "num_envs", low=1)
    n_steps = check_int(n_steps, "n_steps", low=1)
    repeats = check_int(repeats, "repeats", low=1)
    if check_bool(quick, "quick"):
        n_steps, repeats = min(n_steps, 20), 1
    results = {}
    for env_id, kwargs in configs:
        vector = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                              autoreset_mode=autoreset_mode, **kwargs)
        dummy = DummyVecEnv([partial(gym.make, env_id, **kwargs)] * num_envs)
        dummy.seed(seed)
        actions = np.random.default_rng(seed).integers(0, vector.single_action_space.n, (n_steps, num_envs))
        runs: dict[str, list[float]] = {"vector": [], "dummy": []}
        for r in range(repeats + 1):  # the first round warms up (data loading, first-call checks)
            vector_rate = _steps_per_second(vector.step, partial(vector.reset, seed=seed), actions)
            dummy_rate = _steps_per_second(dummy.step, dummy.reset, actions)
            if r:
                runs["vector"].append(vector_rate)
                runs["dummy"].append(dummy_rate)
        vector.close()
        dummy.close()
        vector_rate, dummy_rate = statistics.median(runs["vector"]), statistics.median(runs["dummy"])
        results[env_id] = {
            "vector_steps_per_s": vector_rate,
            "dummy_steps_per_s": dummy_rate,
            "ratio": vector_rate / dummy_rate,
        }
    return results


def format_table(results: dict[str, dict[str, float]], num_envs: int) -> str:
    """A plain-text table of :func:`bench_vector_envs`'s results."""
    width = max(len(env_id) for env_id in results)
    lines = [f"N={num_envs} sub-envs, random actions, resets included (SAME_STEP); median over repeats",
             f"{'env':<{width}}  {'vector steps/s':>14}  {'DummyVecEnv':>12}  {'ratio':>6}"]
    lines += [f"{env_id:<{width}}  {r['vector_steps_per_s']:>14,.0f}  {r['dummy_steps_per_s']:>12,.0f}  {r['ratio']:>5.1f}x"
              for env_id, r in results.items()]
    return "\n".join(lines)
