"""The group baseline of the papers' reference code, over SB3's rollout buffer.

The reference code (google-deepmind/egg, ``egg/losses/common.py``, ``grouped_advantages``)
samples ``K`` answers per prompt and gives every answer the advantage ``R - mean(R of the
same prompt's answers)``: no critic, no discount (``R`` is the sequence reward), no
normalisation, the same value on every token of the answer.

Here a *group* is ``K = group_size`` consecutive sub-envs of the VecEnv (the native
``dg_envs`` vector envs with ``group_size=K`` give them the same prompt every episode), and
an *episode* is one answer. :func:`group_baseline_advantages` computes, from the arrays of
SB3's ``RolloutBuffer``,

    ``A[t, i] = G(e) - mean_{j in group(i)} G(e_j)``

where ``G(e)`` is the undiscounted return of the episode ``e`` that step ``t`` of sub-env
``i`` belongs to and ``e_j`` the episode of sub-env ``j`` that runs at the same time. This
needs episodes that a rollout never cuts (``n_steps`` a multiple of the episode length)
and that start and end together within each group: it raises ``ValueError`` otherwise.

:class:`GroupBaselineRolloutBuffer` puts it into any SB3 on-policy algorithm of ours:

>>> import gymnasium as gym, dg_envs
>>> from dg_envs.algos import DGA2C
>>> from dg_envs.vec_env import make_vec_env
>>> venv = make_vec_env("dg_envs/TokenReversal-v0", n_envs=4, seed=0, env_kwargs=dict(length=3, group_size=2))
>>> model = DGA2C("MlpPolicy", venv, n_steps=3, **group_baseline_options(venv))
>>> _ = model.learn(24)
>>> model.rollout_buffer.group_size
2
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th

from dg_envs.algos.relabel import BehaviorRolloutBuffer
from dg_envs.validation import check_int

__all__ = ["GroupBaselineRolloutBuffer", "group_baseline_advantages", "group_baseline_options", "group_size_of"]

_NEEDED = (
    "the group baseline needs every episode inside one rollout (n_steps a multiple of the episode length, "
    "episodes that terminate at a fixed length) and the group_size sub-envs of a group stepping their episodes "
    "together (group_size dividing n_envs; e.g. a native dg_envs vector env with group_size=K)"
)


def _check_rollout(rewards: np.ndarray, starts: np.ndarray, group_size: int, last_dones: np.ndarray | None) -> None:
    n_steps, n_envs = rewards.shape
    if n_envs % group_size:
        raise ValueError(f"group_size must divide n_envs, got group_size={group_size} and n_envs={n_envs}")
    if not starts[0].all():
        i = int(np.flatnonzero(~starts[0])[0])
        raise ValueError(f"the rollout starts in the middle of an episode (env {i}): {_NEEDED}")
    groups = starts.reshape(n_steps, n_envs // group_size, group_size)
    unsynced = (groups != groups[..., :1]).any(axis=2)
    if unsynced.any():
        t, g = (int(x) for x in np.argwhere(unsynced)[0])
        raise ValueError(
            f"the episodes of group {g} (envs {g * group_size}..{(g + 1) * group_size - 1}) do not start together "
            f"(rollout step {t}): {_NEEDED}"
        )
    if last_dones is not None:
        last_dones = np.asarray(last_dones, dtype=bool).reshape(-1)
        if last_dones.shape != (n_envs,):
            raise ValueError(f"last_dones must have shape ({n_envs},), got {last_dones.shape}")
        if not last_dones.all():
            i = int(np.flatnonzero(~last_dones)[0])
            raise ValueError(f"the rollout cuts an episode (env {i} is not done at the last step): {_NEEDED}")
        return
    # Without the last step's dones: fixed-length episodes must all be as long as the first.
    for i in range(n_envs):
        lengths = np.diff(np.append(np.flatnonzero(starts[:, i]), n_steps))
        if (lengths != lengths[0]).any():
            raise ValueError(
                f"env {i}'s episodes in the rollout have lengths {lengths.tolist()}: the last one is cut or the "
                f"episodes are not of fixed length; {_NEEDED}"
            )


def group_baseline_advantages(
    rewards: np.ndarray,
    episode_starts: np.ndarray,
    group_size: int,
    last_dones: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns of the group baseline from SB3 buffer arrays (egg ``grouped_advantages``).

    :param rewards: ``(n_steps, n_envs)`` rewards, as in SB3's ``RolloutBuffer.rewards``.
    :param episode_starts: ``(n_steps, n_envs)``, 1 where the step is the first of an episode.
    :param group_size: ``K``, the number of consecutive sub-envs that form a group.
    :param last_dones: ``(n_envs,)`` dones of the rollout's last step (what SB3 passes to
        ``compute_returns_and_advantage``): all must be True. Without them, a cut last episode
        is recognised by being shorter than the sub-env's first one (fixed-length episodes).
    :return: ``(advantages, returns)``, float64 arrays of shape ``(n_steps, n_envs)``:
        ``advantages[t, i] = G - mean of G over the group`` on every step of the episode
        (``G`` = undiscounted episode return), ``returns[t, i]`` = undiscounted reward-to-go
        (what an unused critic would be fitted to; equal to ``G`` for a sequence reward).

    Raises ``ValueError`` (saying what is wrong and what is needed) if a group's episodes are
    not synchronised, the rollout starts inside an episode or cuts one, or ``group_size`` does
    not divide ``n_envs``.

    >>> rewards = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.5, 0.5]])  # 2 steps, 4 envs
    >>> starts = np.array([[1, 1, 1, 1], [0, 0, 0, 0]])                  # one 2-step episode each
    >>> adv, ret = group_baseline_advantages(rewards, starts, group_size=2)
    >>> adv
    array([[ 0.5, -0.5,  0. ,  0. ],
           [ 0.5, -0.5,  0. ,  0. ]])
    >>> group_baseline_advantages(rewards, np.array([[1, 1, 1, 1], [0, 1, 0, 0]]), group_size=2)
    Traceback (most recent call last):
    ...
    ValueError: the episodes of group 0 (envs 0..1) do not start together (rollout step 1): the group baseline needs every episode inside one rollout (n_steps a multiple of the episode length, episodes that terminate at a fixed length) and the group_size sub-envs of a group stepping their episodes together (group_size dividing n_envs; e.g. a native dg_envs vector env with group_size=K)
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    starts = np.asarray(episode_starts)
    if rewards.ndim != 2 or starts.shape != rewards.shape:
        raise ValueError(
            f"rewards and episode_starts must both have shape (n_steps, n_envs), got {rewards.shape} and {starts.shape}"
        )
    if not np.isin(starts, (0, 1)).all():
        raise ValueError("episode_starts must hold 0/1 (or booleans)")
    starts = starts.astype(bool)
    group_size = check_int(group_size, "group_size", low=1)
    _check_rollout(rewards, starts, group_size, last_dones)
    n_steps, n_envs = rewards.shape
    # Episode index of each step within its column; one bin per (episode, env).
    episode = np.cumsum(starts, axis=0) - 1
    bins = episode * n_envs + np.arange(n_envs)
    episode_return = np.bincount(bins.ravel(), weights=rewards.ravel(), minlength=int(bins.max()) + 1)
    G = episode_return[bins]  # (n_steps, n_envs): each step's episode return
    group_mean = G.reshape(n_steps, n_envs // group_size, group_size).mean(axis=2, keepdims=True)
    advantages = (G.reshape(n_steps, -1, group_size) - group_mean).reshape(n_steps, n_envs)
    # Reward-to-go: G minus what the episode earned before step t.
    earned_before = np.cumsum(rewards, axis=0) - rewards
    at_start = np.where(starts, earned_before, 0.0)
    offset = np.bincount(bins.ravel(), weights=at_start.ravel(), minlength=len(episode_return))
    returns = G - (earned_before - offset[bins])
    return advantages, returns


def group_size_of(env: Any) -> int:
    """The ``group_size`` of a VecEnv (``venv.get_attr("group_size")``), checked to be one value.

    A ``dg_envs.vec_env.GymnasiumVecEnv`` around a native ``dg_envs`` vector env answers it;
    a ``DummyVecEnv`` of single envs does not: pass ``group_size`` yourself.
    """
    try:
        sizes = set(env.get_attr("group_size"))
    except AttributeError:
        raise ValueError(
            f"{type(env).__name__} has no group_size attribute: pass group_size explicitly (K consecutive sub-envs "
            "that share one prompt per episode), or build the env with dg_envs.vec_env.make_vec_env(..., "
            "env_kwargs=dict(group_size=K))"
        ) from None
    if len(sizes) != 1:
        raise ValueError(f"the sub-envs report different group sizes {sorted(sizes)}")
    return check_int(sizes.pop(), "group_size", low=1)


def group_baseline_options(env: Any = None, group_size: int | None = None) -> dict[str, Any]:
    """``rollout_buffer_class`` / ``rollout_buffer_kwargs`` for any of our SB3 algorithms.

    ``DGA2C("MlpPolicy", venv, **group_baseline_options(venv))``; ``group_size`` defaults to the
    env's (:func:`group_size_of`).
    """
    if group_size is None:
        if env is None:
            raise ValueError("pass env (to read its group_size) or group_size")
        group_size = group_size_of(env)
    return {"rollout_buffer_class": GroupBaselineRolloutBuffer, "rollout_buffer_kwargs": {"group_size": group_size}}


class GroupBaselineRolloutBuffer(BehaviorRolloutBuffer):
    """A :class:`~dg_envs.algos.BehaviorRolloutBuffer` whose advantages are the group baseline's.

    ``compute_returns_and_advantage`` ignores the critic's values, ``gamma`` and
    ``gae_lambda``: ``advantages`` = episode return minus its group's mean return (on every
    step, unnormalised), ``returns`` = undiscounted reward-to-go (so a critic, if the
    algorithm trains one, learns ``E[G | s]``, and ``train/explained_variance`` stays
    meaningful). Pass to any SB3 on-policy algorithm:
    ``rollout_buffer_class=GroupBaselineRolloutBuffer, rollout_buffer_kwargs={"group_size": K}``
    (or ``**group_baseline_options(venv)``). Use ``n_steps`` = a multiple of the episode
    length; ``normalize_advantage=False`` keeps the reference's unnormalised advantage.

    Caveat: SB3 adds ``gamma * V(terminal obs)`` to the reward of a *truncated* step; the
    dg_envs tasks terminate, never truncate.
    """

    def __init__(self, *args: Any, group_size: int, **kwargs: Any) -> None:
        self.group_size = check_int(group_size, "group_size", low=1)
        super().__init__(*args, **kwargs)
        if self.n_envs % self.group_size:
            raise ValueError(
                f"group_size must divide n_envs, got group_size={self.group_size} and n_envs={self.n_envs}"
            )

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        advantages, returns = group_baseline_advantages(self.rewards, self.episode_starts, self.group_size, dones)
        self.advantages = advantages.astype(np.float32)
        self.returns = returns.astype(np.float32)
