"""The core of the policy-driven actors (:mod:`~dg_envs.wrappers.stale`, :mod:`~dg_envs.wrappers.mismatch`).

Both act with a snapshot of the learner's policy: the one ``lag`` learner updates old, with
Gaussian noise of std ``noise_std`` on its logits or mean. They differ only in their defaults
and their name, so one spec base and one implementation per execution serve both:

* the snapshot store: ``lag + 1`` snapshots, so the one ``lag`` updates old is held once that
  many were pushed (before that the oldest is used, and ``info["actor_lag"]`` says how old);
* ``push_policy_snapshot(actor)``, forwarded to inner policy-driven wrappers (for a vector
  stack: down the vector wrappers, then into the sub-envs of a ``SyncVectorEnv``);
* the lag (``random_lag``, :data:`RANDOM_LAG_VALUES`): fixed (``False``), drawn uniformly from
  ``0..lag`` per step or per episode (``True``, by ``per``), or drawn once per push
  (``"update"``: every step, and in the vector execution every sub-env, acts with the same
  snapshot until the next push, as the reference's launcher draws one delay per batch);
* the noise (``noise``, :data:`NOISE_VALUES`): fresh ``N(0, noise_std**2)`` per logit and per
  action (``"per_step"``), or one fixed bias vector ``noise_std * z``, ``z ~ N(0, I)`` over the
  logits (the mean for a Box), drawn at the first seeded reset and held (``"fixed_bias"``, the
  reference's ``logit_noise.py``); the actor is then called with ``logit_bias=``;
* before any snapshot was pushed the learner's action passes through and nothing is recorded
  (it *is* a sample of the current policy);
* the per-env actor calls its snapshot on a batch of one observation; the vector actor calls it
  **once** per step on the observations of every sub-env where it acts (once per distinct lag
  when the lag is drawn per step or per episode: each lag is another network).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import SyncVectorEnv, VectorWrapper

from dg_envs.validation import check_choice, check_int, check_real
from dg_envs.wrappers._base import EnvFriction, FrictionSpec, VectorFriction
from dg_envs.wrappers._spaces import (
    as_action,
    as_actions,
    batch_of_one,
    check_observation_finite,
    float_observation_keys,
    take_rows,
)
from dg_envs.wrappers.actors import Actor, PolicySnapshotStore, _as_actor, _check_actor_spaces, _check_takes_logit_bias

#: Accepted values of ``random_lag``: a fixed lag, one drawn per step or per episode (by ``per``), one drawn per push.
RANDOM_LAG_VALUES = (False, True, "update")
#: Accepted values of ``noise``: fresh noise for every action, or one bias vector held for the wrapper's life.
NOISE_VALUES = ("per_step", "fixed_bias")


def check_random_lag(value: Any) -> bool | str:
    """``True`` / ``False`` (Python or NumPy) or ``"update"``.

    >>> check_random_lag("update"), check_random_lag(np.bool_(True))
    ('update', True)
    >>> check_random_lag("episode")
    Traceback (most recent call last):
    ...
    ValueError: random_lag must be True, False or 'update', got 'episode'
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value == "update":
        return value
    raise ValueError(f"random_lag must be True, False or 'update', got {value!r}")


def logit_width(space: gym.Space) -> int:
    """How many logits (Discrete, MultiDiscrete: all components) or mean entries (Box) the policy outputs.

    >>> from gymnasium import spaces
    >>> logit_width(spaces.Discrete(5)), logit_width(spaces.MultiDiscrete([3, 4])), logit_width(spaces.Box(-1, 1, (2,)))
    (5, 7, 2)
    """
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    return int(np.prod(space.shape))


@dataclass(frozen=True)
class PolicyActorSpec(FrictionSpec):
    """Checks of the fields a policy-driven actor has: ``lag``, ``random_lag``, ``noise_std``, ``noise``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("lag", check_int(getattr(self, "lag"), "lag", low=0))
        self._set("random_lag", check_random_lag(getattr(self, "random_lag")))
        self._set("noise_std", check_real(getattr(self, "noise_std"), "noise_std", low=0.0))
        self._set("noise", check_choice(getattr(self, "noise"), "noise", NOISE_VALUES))

    @property
    def lag_draw(self) -> str | None:
        """When the lag is drawn: None (fixed), ``"step"``, ``"episode"`` or ``"update"`` (at each push)."""
        if self.random_lag == "update":
            return "update" if getattr(self, "lag") > 0 else None
        return getattr(self, "per") if self.random_lag else None

    @property
    def fixed_bias(self) -> bool:
        """Whether the actor acts with a fixed (nonzero) logit bias."""
        return getattr(self, "noise") == "fixed_bias" and getattr(self, "noise_std") > 0


class _PolicyActorCore:
    """What both executions of a policy actor share besides the step: the per-push lag and the fixed bias.

    Drawn from the wrapper's own generator: the per-push lag lazily, at the first step that
    needs it after a push (so a push made before the first seeded reset still draws from the
    seeded stream); the fixed bias at the first seeded reset (:meth:`_on_seed`), and held from
    then on. An actor that acts before any seeded reset draws a provisional bias from the
    unseeded generator, which the first seeded reset replaces.
    """

    friction_spec: PolicyActorSpec
    rng: np.random.Generator
    lag: int
    noise_std: float

    def _init_core(self, action_space: gym.Space) -> None:
        spec = self.friction_spec
        self._lag_draw = spec.lag_draw
        self._fixed_bias = spec.fixed_bias
        self._bias_width = logit_width(action_space)
        self._pushed_lag: int | None = None  # "update": the lag drawn for the last push (None: not yet drawn)
        self._logit_bias: np.ndarray | None = None
        self._bias_seeded = False

    def _on_push(self, actor: Actor) -> None:
        if self._fixed_bias:
            _check_takes_logit_bias(actor, type(self).__name__)
        self._pushed_lag = None  # redrawn for the new snapshot

    def _update_lag(self) -> int:
        """``random_lag="update"``: the lag drawn for the last push (drawn now if not yet)."""
        lag = self._pushed_lag
        if lag is None:
            lag = self._pushed_lag = int(self.rng.integers(0, self.lag + 1))
        return lag

    def _on_seed(self) -> None:
        if self._fixed_bias and not self._bias_seeded:
            self._logit_bias = self._draw_bias()
            self._bias_seeded = True

    def _draw_bias(self) -> np.ndarray:
        bias = self.noise_std * self.rng.standard_normal(self._bias_width)
        bias.flags.writeable = False
        return bias

    def _bias(self) -> np.ndarray:
        bias = self._logit_bias
        if bias is None:  # acting before any seeded reset: a provisional bias
            bias = self._logit_bias = self._draw_bias()
        return bias

    @property
    def logit_bias(self) -> np.ndarray | None:
        """``noise="fixed_bias"``: the bias added to the logits (Box: to the mean), ``noise_std * z``; else None.

        Shape ``(width,)``: Discrete ``n``, MultiDiscrete ``sum(nvec)`` (the components' logits
        concatenated), Box the flattened action size. None until drawn (the first seeded reset).
        """
        return self._logit_bias if self._fixed_bias else None


class EnvPolicyActor(_PolicyActorCore, EnvFriction):
    """A policy-driven actor around one env."""

    def _bind(self) -> None:
        self.snapshots = PolicySnapshotStore(max_size=self.lag + 1)
        self._episode_lag = self.lag
        self._float_obs = float_observation_keys(self.observation_space)
        self._init_core(self._space)

    def push_policy_snapshot(self, actor: Actor) -> int:
        """Store a snapshot of the learner's policy and forward it to inner policy-driven wrappers.

        ``actor``: an :class:`~dg_envs.wrappers.Actor`, or an SB3 policy (copied into an
        :class:`~dg_envs.wrappers.SB3PolicyActor`); one built for other spaces than this env's
        is rejected here rather than at the next step. Returns how many wrappers of this env
        stored it (``VecEnv.env_method`` reaches only the outermost one, which forwards it inwards).
        """
        actor = _as_actor(actor, name="actor")
        _check_actor_spaces(actor, self.observation_space, self.action_space, "actor", type(self).__name__)
        self._on_push(actor)
        self.snapshots.push(actor)
        env = self.env
        while isinstance(env, gym.Wrapper):
            if isinstance(env, EnvPolicyActor):
                return 1 + env.push_policy_snapshot(actor)
            env = env.env
        return 1

    def _start_episode(self) -> None:
        if self._lag_draw == "episode":
            self._episode_lag = int(self.rng.integers(0, self.lag + 1))

    def _replace(self, action: Any) -> tuple[Any, float, int] | None:
        if not self._fires():
            return None
        lag = self.lag
        draw = self._lag_draw
        if draw is not None:
            if draw == "step":
                lag = int(self.rng.integers(0, self.lag + 1))
            else:
                lag = self._episode_lag if draw == "episode" else self._update_lag()
        actor = self.snapshots.get(lag)
        if actor is None:  # no snapshot yet: the learner's action is the current policy's
            return None
        if self._float_obs:
            check_observation_finite(self._obs, self._float_obs, self._names[0])
        if self._fixed_bias:
            actions, log_probs = actor(batch_of_one(self._obs), self.rng, logit_bias=self._bias())
        else:
            actions, log_probs = actor(batch_of_one(self._obs), self.rng, noise_std=self.noise_std)
        return as_action(self._space, actions[0]), float(log_probs[0]), min(lag, len(self.snapshots) - 1)


class VectorPolicyActor(_PolicyActorCore, VectorFriction):
    """A policy-driven actor around a vector env: one forward pass per step for every sub-env where it acts."""

    def _bind(self) -> None:
        self.snapshots = PolicySnapshotStore(max_size=self.lag + 1)
        self._episode_lags = np.full(self.num_envs, self.lag, dtype=np.int64)
        self._float_obs = float_observation_keys(self.single_observation_space)
        self._lag_rows = np.zeros(self.num_envs, dtype=np.int64)  # the used lag, when one for all rows
        self._init_core(self._space)

    def push_policy_snapshot(self, actor: Actor) -> int:
        """Store one snapshot for all sub-envs and forward it to inner policy-driven wrappers.

        ``actor``: an :class:`~dg_envs.wrappers.Actor`, or an SB3 policy (copied once). Inner
        vector policy actors get the same object, and so do per-env ones inside the sub-envs of a
        ``SyncVectorEnv``. Returns how many wrappers stored it.
        """
        actor = _as_actor(actor, name="actor")
        _check_actor_spaces(actor, self.single_observation_space, self.single_action_space, "actor", type(self).__name__)
        self._on_push(actor)
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
        if self._lag_draw == "episode" and k:
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
        space, rng = self._space, self.rng
        noise = {"logit_bias": self._bias()} if self._fixed_bias else {"noise_std": self.noise_std}
        draw = self._lag_draw
        if draw is None or draw == "update" or self.lag == 0:  # one snapshot: one forward pass
            lag = self._update_lag() if draw == "update" else self.lag
            sampled, log_probs = store.get(lag)(obs, rng, **noise)
            used = min(lag, len(store) - 1)
            if self._lag_rows[0] != used:
                self._lag_rows = np.full(self.num_envs, used, dtype=np.int64)
            return fired, as_actions(space, sampled, k), np.asarray(log_probs, dtype=np.float64), self._lag_rows[:k]
        lags = self._episode_lags[fired] if draw == "episode" else rng.integers(0, self.lag + 1, k)
        executed = np.empty((k, *space.shape), dtype=np.int64 if space.shape == () else space.dtype)
        log_probs = np.empty(k)
        for lag in np.unique(lags).tolist():  # one forward pass per distinct snapshot (a loop over lags)
            rows = np.flatnonzero(lags == lag)
            sampled, row_log_probs = store.get(lag)(take_rows(obs, rows), rng, **noise)
            executed[rows], log_probs[rows] = as_actions(space, sampled, len(rows)), row_log_probs
        return fired, executed, log_probs, np.minimum(lags, len(store) - 1)
