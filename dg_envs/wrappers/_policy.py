"""The core of the policy-driven actors (:mod:`~dg_envs.wrappers.stale`, :mod:`~dg_envs.wrappers.mismatch`).

Both act with a snapshot of the learner's policy: the one ``lag`` learner updates old
(``random_lag``: a lag drawn uniformly from ``0..lag``, per step or per episode), with Gaussian
noise of std ``noise_std`` on its logits or mean. They differ only in their defaults and their
name, so one spec base and one implementation per execution serve both:

* the snapshot store: ``lag + 1`` snapshots, so the one ``lag`` updates old is held once that
  many were pushed (before that the oldest is used, and ``info["actor_lag"]`` says how old);
* ``push_policy_snapshot(actor)``, forwarded to inner policy-driven wrappers (for a vector
  stack: down the vector wrappers, then into the sub-envs of a ``SyncVectorEnv``);
* before any snapshot was pushed the learner's action passes through and nothing is recorded
  (it *is* a sample of the current policy);
* the per-env actor calls its snapshot on a batch of one observation; the vector actor calls it
  **once** per step on the observations of every sub-env where it acts (once per distinct lag
  when the lag is random: each lag is another network).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import SyncVectorEnv, VectorWrapper

from dg_envs.validation import check_bool, check_int, check_real
from dg_envs.wrappers._base import EnvFriction, FrictionSpec, VectorFriction
from dg_envs.wrappers._spaces import (
    as_action,
    as_actions,
    batch_of_one,
    check_observation_finite,
    float_observation_keys,
    take_rows,
)
from dg_envs.wrappers.actors import Actor, PolicySnapshotStore, _as_actor, _check_actor_spaces


@dataclass(frozen=True)
class PolicyActorSpec(FrictionSpec):
    """Checks of the fields a policy-driven actor has: ``lag``, ``random_lag``, ``noise_std``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("lag", check_int(getattr(self, "lag"), "lag", low=0))
        self._set("random_lag", check_bool(getattr(self, "random_lag"), "random_lag"))
        self._set("noise_std", check_real(getattr(self, "noise_std"), "noise_std", low=0.0))


class EnvPolicyActor(EnvFriction):
    """A policy-driven actor around one env."""

    def _bind(self) -> None:
        self.snapshots = PolicySnapshotStore(max_size=self.lag + 1)
        self._episode_lag = self.lag
        self._float_obs = float_observation_keys(self.observation_space)

    def push_policy_snapshot(self, actor: Actor) -> int:
        """Store a snapshot of the learner's policy and forward it to inner policy-driven wrappers.

        ``actor``: an :class:`~dg_envs.wrappers.Actor`, or an SB3 policy (copied into an
        :class:`~dg_envs.wrappers.SB3PolicyActor`); one built for other spaces than this env's
        is rejected here rather than at the next step. Returns how many wrappers of this env
        stored it (``VecEnv.env_method`` reaches only the outermost one, which forwards it inwards).
        """
        actor = _as_actor(actor, name="actor")
        _check_actor_spaces(actor, self.observation_space, self.action_space, "actor", type(self).__name__)
        self.snapshots.push(actor)
        env = self.env
        while isinstance(env, gym.Wrapper):
            if isinstance(env, EnvPolicyActor):
                return 1 + env.push_policy_snapshot(actor)
            env = env.env
        return 1

    def _start_episode(self) -> None:
        if self.random_lag:
            self._episode_lag = int(self.rng.integers(0, self.lag + 1))

    def _replace(self, action: Any) -> tuple[Any, float, int] | None:
        if not self._fires():
            return None
        lag = self.lag
        if self.random_lag:
            lag = self._episode_lag if self.per == "episode" else int(self.rng.integers(0, self.lag + 1))
        actor = self.snapshots.get(lag)
        if actor is None:  # no snapshot yet: the learner's action is the current policy's
            return None
        if self._float_obs:
            check_observation_finite(self._obs, self._float_obs, self._names[0])
        actions, log_probs = actor(batch_of_one(self._obs), self.rng, noise_std=self.noise_std)
        return as_action(self._space, actions[0]), float(log_probs[0]), min(lag, len(self.snapshots) - 1)


class VectorPolicyActor(VectorFriction):
    """A policy-driven actor around a vector env: one forward pass per step for every sub-env where it acts."""

    def _bind(self) -> None:
        self.snapshots = PolicySnapshotStore(max_size=self.lag + 1)
        self._episode_lags = np.full(self.num_envs, self.lag, dtype=np.int64)
        self._float_obs = float_observation_keys(self.single_observation_space)
        self._lag_rows = np.zeros(self.num_envs, dtype=np.int64)  # the used lag, when fixed, for every row

    def push_policy_snapshot(self, actor: Actor) -> int:
        """Store one snapshot for all sub-envs and forward it to inner policy-driven wrappers.

        ``actor``: an :class:`~dg_envs.wrappers.Actor`, or an SB3 policy (copied once). Inner
        vector policy actors get the same object, and so do per-env ones inside the sub-envs of a
        ``SyncVectorEnv``. Returns how many wrappers stored it.
        """
        actor = _as_actor(actor, name="actor")
        _check_actor_spaces(actor, self.single_observation_space, self.single_action_space, "actor", type(self).__name__)
        self.snapshots.push(actor)
        env = self.env
        while isinstance(env, VectorWrapper):
            if isinstance(env, VectorPolicyActor):
                return 1 + env.push_policy_snapshot(actor)
            env = env.env
        if isinstance(env, SyncVectorEnv):
            return 1 + sum(
                sub.get_wrapper_attr("push_policy_snapshot")(actor)
                for sub in env.envs
                if sub.has_wrapper_attr("push_policy_snapshot")
            )
        return 1

    def _start_episodes(self, starts: np.ndarray) -> None:
        super()._start_episodes(starts)
        k = np.count_nonzero(starts)
        if self.random_lag and k:
            lags = self._episode_lags.copy()  # a new array, as the firing draws
            lags[starts] = self.rng.integers(0, self.lag + 1, k)
            self._episode_lags = lags

    def _replace(self, actions: Any, fired: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        store = self.snapshots
        if not len(store):  # no snapshot yet: the learner's actions are the current policy's
            return None
        obs = self._obs if k == self.num_envs else take_rows(self._obs, fired.nonzero()[0])
        if self._float_obs:
            check_observation_finite(obs, self._float_obs, self._names[0])
        space, rng, noise_std = self._space, self.rng, self.noise_std
        if not self.random_lag or self.lag == 0:  # one snapshot: one forward pass
            sampled, log_probs = store.get(self.lag)(obs, rng, noise_std=noise_std)
            used = min(self.lag, len(store) - 1)
            if self._lag_rows[0] != used:
                self._lag_rows = np.full(self.num_envs, used, dtype=np.int64)
            return fired, as_actions(space, sampled, k), np.asarray(log_probs, dtype=np.float64), self._lag_rows[:k]
        lags = self._episode_lags[fired] if self.per == "episode" else rng.integers(0, self.lag + 1, k)
        executed = np.empty((k, *space.shape), dtype=np.int64 if space.shape == () else space.dtype)
        log_probs = np.empty(k)
        for lag in np.unique(lags).tolist():  # one forward pass per distinct snapshot (a loop over lags)
            rows = np.flatnonzero(lags == lag)
            sampled, row_log_probs = store.get(lag)(take_rows(obs, rows), rng, noise_std=noise_std)
            executed[rows], log_probs[rows] = as_actions(space, sampled, len(rows)), row_log_probs
        return fired, executed, log_probs, np.minimum(lags, len(store) - 1)
