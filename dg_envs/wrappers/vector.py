"""Batched policy-driven actors for SB3 VecEnvs: one forward pass per step for all sub-envs.

:class:`~dg_envs.wrappers.StaleActor` and :class:`~dg_envs.wrappers.MismatchedActor` wrap one
sub-env each and call their snapshot on a batch of one observation: with ``n_envs`` sub-envs
that is ``n_envs`` small forward passes per vector step. :class:`VecStaleActor` and
:class:`VecMismatchedActor` do the same job around the whole ``VecEnv``: one batched forward
pass per step (per distinct lag, when the lag is random), and the snapshots stay in the main
process (nothing is pickled to ``SubprocVecEnv`` workers).

Semantics are those of the per-env wrappers, sub-env by sub-env: each sub-env has its own
lag / noise draws (per step, or per episode: redrawn when that sub-env's episode ends), the
replacement is recorded in that sub-env's ``info`` (an inner, per-env replacement — a bug, a
discovery — still wins: it is what the environment executed), and Box actions are reported
raw and executed clipped. The wrapper's generator is seeded by ``venv.seed(seed)`` (SB3's
``make_vec_env(..., seed=...)`` calls it) with its own ``SeedSequence`` stream.

:func:`~dg_envs.wrappers.push_policy_snapshot` finds these wrappers in the VecEnv stack, so
our algorithms and :class:`~dg_envs.wrappers.SnapshotCallback` feed them without change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from dg_envs.validation import check_choice, check_int, check_probability
from dg_envs.wrappers.actors import Actor, PolicySnapshotStore, _as_actor, _check_actor_spaces
from dg_envs.wrappers.frictions import (
    PER_VALUES,
    _check_action_space,
    _check_observation_finite,
    _check_policy_actor_args,
    _float_observation_keys,
)
from dg_envs.wrappers.protocol import (
    ACTOR_LAG,
    EXECUTED_ACTION,
    FRICTIONS,
    MISMATCH,
    STALE,
    record_friction,
    record_replacement,
)

__all__ = ["VecMismatchedActor", "VecStaleActor"]

class _VecPolicyActor(VecEnvWrapper):
    """Shared machinery: with probability ``p`` act with the snapshot ``lag`` old, noise ``noise_std``."""

    _seed_key = 101

    def __init__(
        self,
        venv: VecEnv,
        *,
        lag: int,
        random_lag: bool,
        noise_std: float,
        p: float,
        per: str,
        max_snapshots: int | None,
    ) -> None:
        if not isinstance(venv, VecEnv):
            raise TypeError(
                f"venv must be a Stable-Baselines3 VecEnv (DummyVecEnv, SubprocVecEnv, make_vec_env(...)), got "
                f"{venv!r}; around a single Gymnasium env use {type(self).__name__[3:]}"
            )
        lag, random_lag, noise_std = _check_policy_actor_args(lag, random_lag, noise_std)
        p, per = check_probability(p), check_choice(per, "per", PER_VALUES)
        if max_snapshots is None:
            max_snapshots = lag + 1
        elif check_int(max_snapshots, "max_snapshots", low=1) <= lag:
            # fewer would silently cap the lag: the snapshot ``lag`` updates old would never be held
            raise ValueError(f"max_snapshots must be None or an integer > lag ({lag}), got {max_snapshots!r}")
        _check_action_space(venv.action_space, type(self).__name__)
        super().__init__(venv)
        self.lag, self.random_lag, self.noise_std = lag, random_lag, noise_std
        self.p, self.per = p, per
        self.store = PolicySnapshotStore(int(max_snapshots))
        self._float_obs = _float_observation_keys(self.observation_space)
        self._rng = np.random.default_rng()
        self._obs: Any = None
        self._lags = np.full(self.num_envs, self.lag, dtype=np.int64)
        self._acting = np.ones(self.num_envs, dtype=bool)
        self._pending: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    # -- the learner's side -------------------------------------------------------------
    def push_policy_snapshot(self, actor: Actor) -> bool:
        """Store ``actor`` as the newest snapshot (returns True); per-env actors below get it too.

        ``actor``: an :class:`~dg_envs.wrappers.Actor`, or an SB3 policy (copied); one built for
        other spaces than this VecEnv's is rejected here rather than at the next step.
        """
        actor = _as_actor(actor, name="actor")
        _check_actor_spaces(actor, self.observation_space, self.action_space, "actor", type(self).__name__)
        self.store.push(actor)
        if self.venv.has_attr("push_policy_snapshot"):
            self.venv.env_method("push_policy_snapshot", actor)
        return True

    # push_policy_snapshot(venv, policy) asks ``venv.has_attr`` and calls ``venv.env_method``:
    # answering both here lets it find this wrapper however deep in the VecEnv stack it is.
    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "push_policy_snapshot" or self.venv.has_attr(attr_name)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        if method_name == "push_policy_snapshot" and indices is None:
            self.push_policy_snapshot(*method_args, **method_kwargs)
            return [True] * self.num_envs
        return self.venv.env_method(method_name, *method_args, indices=indices, **method_kwargs)

    # -- seeding and draws -------------------------------------------------------------
    def seed(self, seed: int | None = None):
        if seed is not None:
            self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(self._seed_key,))))
        return self.venv.seed(seed)

    def _draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Each sub-env's lag and whether the actor acts (probability ``p``)."""
        lags = self._rng.integers(0, self.lag + 1, n) if self.random_lag and self.lag > 0 else np.full(n, self.lag)
        acting = (self._rng.random(n) < self.p) if 0.0 < self.p < 1.0 else np.full(n, self.p >= 1.0)
        return lags, acting

    def _redraw(self, mask: np.ndarray) -> None:
        n = int(mask.sum())
        if n:
            self._lags[mask], self._acting[mask] = self._draw(n)

    # -- VecEnv API ------------------------------------------------------------------------
    def reset(self):
        obs = self.venv.reset()
        self._obs = obs
        if self.per == "episode":
            self._redraw(np.ones(self.num_envs, dtype=bool))
        return obs

    def _take(self, idx: np.ndarray) -> Any:
        if isinstance(self._obs, dict):
            return {key: value[idx] for key, value in self._obs.items()}
        return self._obs[idx]

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = None
        if len(self.store) == 0:  # no snapshot yet: the learner's actions are the current policy's
            self.venv.step_async(actions)
            return
        if self.per == "step":
            self._lags, self._acting = self._draw(self.num_envs)
        acting = self._acting
        if not acting.any():
            self.venv.step_async(actions)
            return
        space = self.action_space
        executed = np.array(actions, copy=True).reshape((self.num_envs, *space.shape))
        if isinstance(space, spaces.Box):
            executed = executed.astype(space.dtype)
        log_probs = np.zeros(self.num_envs)
        # One forward pass per distinct lag among the acting sub-envs: one with a fixed lag.
        for lag in np.unique(self._lags[acting]):
            idx = np.flatnonzero(acting & (self._lags == lag))
            obs = self._take(idx)
            if self._float_obs:
                _check_observation_finite(obs, self._float_obs, self._names[0])
            a, lp = self.store.get(int(lag))(obs, self._rng, noise_std=self.noise_std)
            executed[idx] = np.asarray(a).reshape((len(idx), *space.shape))
            log_probs[idx] = lp
        used_lags = np.minimum(self._lags, len(self.store) - 1)
        self._pending = (acting.copy(), executed, log_probs, used_lags)
        to_env = np.clip(executed, space.low, space.high) if isinstance(space, spaces.Box) else executed
        if isinstance(space, spaces.Discrete):
            to_env = to_env.reshape(self.num_envs)
        self.venv.step_async(to_env)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        if self._pending is not None:
            infos = list(infos)  # SubprocVecEnv returns a tuple
            acting, executed, log_probs, used_lags = self._pending
            discrete = isinstance(self.action_space, spaces.Discrete)
            for i in np.flatnonzero(acting):
                info = dict(infos[i])
                if FRICTIONS in info:
                    info[FRICTIONS] = list(info[FRICTIONS])
                names = self._names
                action = np.int64(executed[i]) if discrete else executed[i].copy()
                ours = EXECUTED_ACTION not in info  # else an inner, per-env replacement ran
                record_replacement(info, action, float(log_probs[i]), names[0])
                for name in names[1:]:
                    record_friction(info, name)
                if ours:
                    info[ACTOR_LAG] = int(used_lags[i])
                infos[i] = info
            self._pending = None
        if self.per == "episode":
            self._redraw(np.asarray(dones, dtype=bool))
        self._obs = obs
        return obs, rewards, dones, infos


class VecStaleActor(_VecPolicyActor):
    """:class:`~dg_envs.wrappers.StaleActor` for every sub-env of an SB3 VecEnv, batched.

    Args:
        venv: the VecEnv (Discrete, MultiDiscrete or Box actions).
        lag: ``D``, learner updates the acting policy lags behind (>= 0).
        random_lag: draw each sub-env's lag uniformly from ``0..lag``.
        per: ``"step"`` or ``"episode"``: when the random lag is drawn.
        noise_std: Gaussian noise on the stale policy's logits / mean (0: none).
        max_snapshots: snapshots kept (default ``lag + 1``).

    Example:
        >>> import numpy as np
        >>> from stable_baselines3 import PPO
        >>> from stable_baselines3.common.env_util import make_vec_env
        >>> from dg_envs.wrappers import push_policy_snapshot
        >>> venv = VecStaleActor(make_vec_env("CartPole-v1", n_envs=4, seed=0), lag=2)
        >>> model = PPO("MlpPolicy", venv, n_steps=16, batch_size=64, device="cpu")
        >>> push_policy_snapshot(venv, model.policy)  # one snapshot, for the 4 sub-envs
        4
        >>> _ = venv.reset()
        >>> _, _, _, infos = venv.step(np.zeros(4, dtype=np.int64))
        >>> [info["frictions"] for info in infos]
        [['stale'], ['stale'], ['stale'], ['stale']]
    """

    def __init__(
        self,
        venv: VecEnv,
        lag: int = 1,
        random_lag: bool = False,
        per: str = "step",
        noise_std: float = 0.0,
        max_snapshots: int | None = None,
    ) -> None:
        super().__init__(venv, lag=lag, random_lag=random_lag, noise_std=noise_std, p=1.0, per=per, max_snapshots=max_snapshots)
        self._names = (STALE, MISMATCH) if self.noise_std > 0 else (STALE,)


class VecMismatchedActor(_VecPolicyActor):
    """:class:`~dg_envs.wrappers.MismatchedActor` for every sub-env of an SB3 VecEnv, batched.

    Args:
        venv: the VecEnv (Discrete, MultiDiscrete or Box actions).
        noise_std: Gaussian noise on the logits / mean (>= 0).
        p: probability that the noisy actor acts, per sub-env (per step or per episode).
        per: ``"step"`` or ``"episode"``.
        lag, random_lag, max_snapshots: as :class:`VecStaleActor` (default: the newest policy).
    """

    def __init__(
        self,
        venv: VecEnv,
        noise_std: float = 1.0,
        p: float = 1.0,
        per: str = "step",
        lag: int = 0,
        random_lag: bool = False,
        max_snapshots: int | None = None,
    ) -> None:
        super().__init__(venv, lag=lag, random_lag=random_lag, noise_std=noise_std, p=p, per=per, max_snapshots=max_snapshots)
        self._names = (MISMATCH, STALE) if self.lag > 0 else (MISMATCH,)
