"""DeepMind Control Suite tasks as Gymnasium ids: Farama's Shimmy adapter, observations flattened to float32.

Description:
    The DG paper's continuous-control claim is on the DeepMind Control Suite. Each id here is
    one Suite task (``dm_control.suite.load(domain, task)``) through Shimmy's
    ``DmControlCompatibilityV0``, with the ``Dict`` observation flattened by Gymnasium's
    :class:`~gymnasium.wrappers.FlattenObservation` and cast to ``float32`` by
    :class:`~gymnasium.wrappers.TransformObservation`, so SB3's ``MlpPolicy`` takes it as it is.
    Needs the ``dmc`` extra (``pip install "dg-envs[dmc]"``: ``dm_control``, ``shimmy[dm-control]``
    and ``mujoco<4``: ``dm_control`` 1.0.50 fails to compile its models under ``mujoco`` 4).
    Importing :mod:`dg_envs` registers the ids without importing ``dm_control``; making one
    without the extra raises an ``ImportError`` that names it.

Action Space:
    As Shimmy gives it: the task's action spec as a ``Box`` (``[-1, 1]`` per actuator for the
    Suite's tasks, ``float64``).

Observation Space:
    ``Box(-inf, inf, (n,), float32)``: the task's observations flattened in the ``Dict``'s key order.

Reward:
    The Suite's, in ``[0, 1]`` per step (an episode of 1,000 steps scores at most 1,000).

Episode End:
    Truncation at the Suite's time limit (1,000 control steps for the six tasks below); a task
    that ends on its own (none of these) terminates.

Arguments:
    ``make_dmc(domain, task, render_mode=None, task_kwargs=None, environment_kwargs=None)``;
    ``gym.make(id, ...)`` takes the same keyword arguments but ``domain`` and ``task``.
    ``reset(seed=s)`` reseeds the task's random state (start states are reproducible).

Version History:
    v0: first version (dm_control 1.0.50, Shimmy 2.0.1).

Example:
    >>> import gymnasium as gym
    >>> import dg_envs
    >>> gym.spec("dg_envs/dmc-cheetah-run-v0").kwargs
    {'domain': 'cheetah', 'task': 'run'}
    >>> dmc_id("ball_in_cup", "catch")
    'dg_envs/dmc-ball_in_cup-catch-v0'
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["DMC_IDS", "DMC_TASKS", "dmc_id", "make_dmc"]

#: The Suite tasks registered as dg_envs ids (issue 14's six; any other task: :func:`make_dmc`).
DMC_TASKS = (
    ("cartpole", "swingup"),
    ("reacher", "easy"),
    ("cheetah", "run"),
    ("walker", "walk"),
    ("finger", "spin"),
    ("ball_in_cup", "catch"),
)

_MISSING = (
    "the DeepMind Control Suite needs the `dmc` extra: pip install \"dg-envs[dmc]\" "
    "(dm_control, shimmy[dm-control] and mujoco<4; dm_control does not work with mujoco 4)"
)


def dmc_id(domain: str, task: str) -> str:
    """The dg_envs id of a Suite task."""
    return f"dg_envs/dmc-{domain}-{task}-v0"


#: Registered ids, one per :data:`DMC_TASKS` entry.
DMC_IDS = tuple(dmc_id(domain, task) for domain, task in DMC_TASKS)


def make_dmc(
    domain: str,
    task: str,
    render_mode: str | None = None,
    task_kwargs: dict[str, Any] | None = None,
    environment_kwargs: dict[str, Any] | None = None,
) -> gym.Env:
    """One Suite task through Shimmy, its observation flattened to a ``float32`` ``Box`` (the registered ids' entry point).

    :param domain, task: a Suite task, e.g. ``"cheetah", "run"`` (``dm_control.suite.ALL_TASKS``).
    :param render_mode: Shimmy's (``"rgb_array"``, ``"depth_array"``, ``"multi_camera"``, ``"human"``).
    :param task_kwargs, environment_kwargs: passed to ``dm_control.suite.load``.
    :raises ImportError: without the ``dmc`` extra (the message says how to install it).
    """
    try:
        from dm_control import suite
        from shimmy.dm_control_compatibility import DmControlCompatibilityV0
    except ImportError as e:
        raise ImportError(_MISSING) from e
    import mujoco

    if int(mujoco.__version__.split(".")[0]) >= 4:  # dm_control 1.0.50 fails to compile its models
        raise ImportError(f"{_MISSING}; found mujoco {mujoco.__version__}")
    if (domain, task) not in suite.ALL_TASKS:
        raise ValueError(f"({domain!r}, {task!r}) is not a DeepMind Control Suite task; known: "
                         f"{', '.join(f'{d}-{t}' for d, t in suite.ALL_TASKS)}")
    env = DmControlCompatibilityV0(
        suite.load(domain, task, task_kwargs=task_kwargs, environment_kwargs=environment_kwargs),
        render_mode=render_mode,
    )
    flat = gym.wrappers.FlattenObservation(env)
    # Cast with float32 bounds given (DtypeObservation would build them from float64 and warn).
    space = flat.observation_space
    float32_space = gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)
    return gym.wrappers.TransformObservation(flat, _as_float32, float32_space)


def _as_float32(observation: np.ndarray) -> np.ndarray:
    return observation.astype(np.float32)
