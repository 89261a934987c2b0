"""The friction wrappers: stale, mismatched, buggy actors, corrupted rewards, rare discoveries.

Each wrapper is a ``gymnasium.Wrapper`` with one job. Every friction fires with probability
``p`` either per step (``per="step"``) or per episode (``per="episode"``: decided at
``reset`` and held for the whole episode). An action friction that fires replaces the
learner's action and records what really ran (see :mod:`dg_envs.wrappers.protocol`):
``info["executed_action"]``, ``info["behavior_log_prob"]`` and ``info["frictions"]``.

Randomness comes only from each wrapper's own ``numpy.random.Generator``, seeded in
``reset(seed=...)`` as ``np.random.default_rng([seed, OFFSET, depth])`` with an offset fixed
per wrapper class and the number of friction wrappers below it, so stacked wrappers draw from
independent streams (two of the same class included). The seed is passed on to the inner env
unchanged, so ``p=0`` leaves the trajectory identical to the unwrapped env's. The per-step
coin is drawn 256 uniforms at a time (a Python list pop per step: cheap steps).
Before the first seeded reset a wrapper draws from an unseeded generator.

Observation: the policy-driven actors (:class:`StaleActor`, :class:`MismatchedActor`) and an
oracle of :class:`RareDiscovery` act on the observation *this wrapper* sees. Put observation
transforms (and normalisation) inside the frictions, so that it is what the learner sees.
SB3's ``VecNormalize`` works outside every env and so does not fit that rule.

Box actions: a replacing actor's action is reported as sampled (a Gaussian sample is not
clipped, so its log-probability is its density, the convention SB3 uses for its own buffer);
the environment receives it clipped into the Box. An action returned by a user's callable (an
``oracle``, a ``bug``) is checked at that step, before the inner env steps: it must be an
action of the space (for a Box: of its shape and finite; it may leave the bounds).

Each wrapper works per sub-env (SB3's ``DummyVecEnv`` / ``SubprocVecEnv`` and
``make_vec_env(wrapper_class=...)`` apply them). The policy-driven actors call their snapshot
on a batch of one observation per step; :mod:`dg_envs.wrappers.vector` has batched versions
(:class:`~dg_envs.wrappers.VecStaleActor`, :class:`~dg_envs.wrappers.VecMismatchedActor`)
that wrap a whole SB3 VecEnv and run one forward pass per vector step. No
``gymnasium.vector`` versions exist.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

from dg_envs.validation import check_bool, check_choice, check_int, check_probability, check_real
from dg_envs.wrappers.actors import Actor, PolicySnapshotStore, _as_actor, _check_actor_spaces
from dg_envs.wrappers.protocol import (
    ACTOR_LAG,
    BEHAVIOR_LOG_PROB,
    EXECUTED_ACTION,
    FRICTIONS,
    TRUE_REWARD,
    record_friction,
)

__all__ = [
    "StaleActor",
    "MismatchedActor",
    "BuggyActor",
    "RewardCorruption",
    "RareDiscovery",
    "apply_frictions",
    "CANONICAL_ORDER",
    "PER_VALUES",
]

#: Accepted values of ``per``.
PER_VALUES = ("step", "episode")

_SUPPORTED_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.Box)


def _check_reported_log_prob(value: Any, action_space: gym.Space) -> float:
    """The log-probability a replacing actor reports: finite, and <= 0 for discrete actions.

    One check for :class:`BuggyActor` and :class:`RareDiscovery` (a Box log-density may be
    positive, a discrete log-probability may not).

    >>> _check_reported_log_prob(np.float32(-0.5), spaces.Discrete(3))
    -0.5
    >>> _check_reported_log_prob(0.7, spaces.Discrete(3))
    Traceback (most recent call last):
    ...
    ValueError: reported_log_prob must be a finite real number <= 0.0, got 0.7
    """
    return check_real(value, "reported_log_prob", high=None if isinstance(action_space, spaces.Box) else 0.0)


def _check_policy_actor_args(lag: Any, random_lag: Any, noise_std: Any) -> tuple[int, bool, float]:
    """``(lag, random_lag, noise_std)`` of a policy-driven actor, checked (per-env and vector alike)."""
    return check_int(lag, "lag", low=0), check_bool(random_lag, "random_lag"), check_real(noise_std, "noise_std", low=0.0)


def _check_action_space(space: Any, owner: str) -> gym.Space:
    """The action space an action friction supports: Discrete, MultiDiscrete or Box."""
    if not isinstance(space, _SUPPORTED_SPACES):
        raise ValueError(f"env.action_space must be Discrete, MultiDiscrete or Box for {owner}, got {space}")
    return space


def _float_observation_keys(space: gym.Space) -> bool | tuple[str, ...]:
    """What to check for finiteness in an observation: True (the array), the float keys of a Dict, or False."""
    if isinstance(space, spaces.Box):
        return space.dtype.kind == "f"
    if isinstance(space, spaces.Dict):
        return tuple(key for key, sub in space.spaces.items() if isinstance(sub, spaces.Box) and sub.dtype.kind == "f")
    return False


def _all_finite(x: np.ndarray) -> bool:
    """Whether every entry of a float array is finite.

    Small arrays (actions, low-dimensional observations) go through a list: a few hundred ns
    where ``np.isfinite(x).all()`` costs a few us (the reduction's set-up dominates).
    """
    if x.size <= 64:
        return all(map(math.isfinite, x.ravel().tolist()))
    return bool(np.isfinite(x).all())


def _check_observation_finite(obs: Any, keys: bool | tuple[str, ...], owner: str) -> None:
    """Raise if the observation a policy-driven actor is about to act on holds NaN or inf.

    A policy's forward pass on NaN gives NaN logits, which sample action 0 with a NaN
    log-probability: a silent failure. One finiteness test of the (batch of) observations
    (``keys`` from :func:`_float_observation_keys`; False skips it for integer observations).
    """
    if keys is True:
        finite = _all_finite(np.asarray(obs))
    elif keys:
        finite = all(_all_finite(np.asarray(obs[key])) for key in keys)
    else:
        return
    if not finite:
        raise ValueError(
            f"the observation given to the {owner} actor is non-finite (NaN or inf): its policy cannot act on it; "
            "check the environment (or an observation wrapper inside this one)"
        )


def _batch_of_one(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {key: np.asarray(value)[None] for key, value in obs.items()}
    return np.asarray(obs)[None]


def _zero_action(space: gym.Space) -> Any:
    """The space's "zero" action: 0 (or ``start``) for Discrete, zeros for MultiDiscrete, 0 clipped into a Box."""
    if isinstance(space, spaces.Discrete):
        return np.int64(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start, dtype=space.dtype).copy()
    return np.clip(np.zeros(space.shape), space.low, space.high).astype(space.dtype)


def _uniform_action(space: gym.Space, rng: np.random.Generator) -> Any:
    """A uniformly random action from ``rng`` (standard normal on unbounded Box dimensions)."""
    if isinstance(space, spaces.Discrete):
        return np.int64(space.start + rng.integers(space.n))
    if isinstance(space, spaces.MultiDiscrete):
        return (space.start + rng.integers(space.nvec)).astype(space.dtype)
    bounded = space.bounded_below & space.bounded_above
    low, high = np.where(bounded, space.low, 0.0), np.where(bounded, space.high, 1.0)
    action = np.where(bounded, rng.uniform(low, high), rng.standard_normal(space.shape))
    return np.clip(action, space.low, space.high).astype(space.dtype)


def _uniform_log_prob(space: gym.Space, action: Any) -> float:
    """Log-probability (log-density for Box) of ``action`` under :func:`_uniform_action`."""
    if isinstance(space, spaces.Discrete):
        return -float(np.log(space.n))
    if isinstance(space, spaces.MultiDiscrete):
        return -float(np.log(space.nvec.astype(np.float64)).sum())
    bounded = space.bounded_below & space.bounded_above
    width = np.where(bounded, space.high.astype(np.float64) - space.low.astype(np.float64), 1.0)
    gauss = -0.5 * np.asarray(action, dtype=np.float64) ** 2 - 0.5 * np.log(2 * np.pi)
    return float(np.where(bounded, -np.log(width), gauss).sum())


def _as_action(space: gym.Space, action: Any) -> Any:
    if isinstance(space, spaces.Discrete):
        if isinstance(action, (int, np.integer)):  # the common case, ~10x cheaper than asarray
            return np.int64(action)
        return np.int64(np.asarray(action).reshape(()))
    return np.array(action, dtype=space.dtype).reshape(space.shape)  # a copy: infos must not share data


class _ActionCheck:
    """``check(raw)``: ``raw`` as an action of ``space`` (a copy), or a ``ValueError`` naming ``name`` and the space.

    For what a user gives, or a user's callable returns (``landmine``, ``oracle``, ``bug``), so
    that a wrong action fails at the step that produced it, not inside the environment or,
    later, inside training. Discrete / MultiDiscrete: integers in the space, shaped as the space
    or as a batch of one. Box: numbers of that shape, finite; outside the bounds too unless
    ``in_bounds`` (an actor's sample is reported raw and executed clipped). Built once per
    wrapper (bounds precomputed: about 1 us a call), and picklable.

    >>> _ActionCheck(spaces.Discrete(10), "oracle")(42)
    Traceback (most recent call last):
    ...
    ValueError: oracle returned 42, which is not an action of Discrete(10) (an integer in 0..9)
    """

    def __init__(self, space: gym.Space, name: str, in_bounds: bool = False) -> None:
        self.space, self.name, self.in_bounds = space, name, in_bounds
        self.discrete, self.box = isinstance(space, spaces.Discrete), isinstance(space, spaces.Box)
        self.shape, self.dtype = space.shape, space.dtype
        self.shapes = (space.shape, (1, *space.shape))
        self.kinds = "iuf" if self.box else "iu"
        if self.discrete:
            self.low, self.high = int(space.start), int(space.start + space.n)  # high exclusive
            self.accepted = f"an integer in {self.low}..{self.high - 1}"
        elif self.box:
            self.low, self.high = space.low, space.high
            self.accepted = f"finite numbers of shape {space.shape}{' within its bounds' if in_bounds else ''}"
        else:  # as lists: a Python comparison of a few entries is cheaper than numpy's
            self.low = np.asarray(space.start, dtype=np.int64).ravel().tolist()
            self.high = (np.asarray(space.start, dtype=np.int64) + space.nvec).ravel().tolist()  # exclusive
            self.accepted = f"integers of shape {space.shape}, each in start..start + nvec - 1"

    def __call__(self, raw: Any) -> Any:
        if self.discrete and isinstance(raw, (int, np.integer)) and not isinstance(raw, bool):  # the common case
            if self.low <= raw < self.high:
                return np.int64(raw)
            self._fail(raw)
        if type(raw) is np.ndarray:
            arr = raw
        else:
            try:
                arr = None if isinstance(raw, (str, bytes)) else np.asarray(raw)
            except (TypeError, ValueError):  # a ragged list, an object numpy cannot take
                arr = None
        if arr is None or arr.dtype.kind not in self.kinds or arr.shape not in self.shapes:
            self._fail(raw)
        if self.discrete:
            action = np.int64(arr.reshape(()))
            ok = self.low <= action < self.high
        else:
            action = np.array(arr, dtype=self.dtype)  # a copy: infos must not share data
            if action.shape != self.shape:
                action = action.reshape(self.shape)
            if self.box:
                ok = _all_finite(action) and (not self.in_bounds or bool(((action >= self.low) & (action <= self.high)).all()))
            else:
                ok = all(low <= a < high for low, a, high in zip(self.low, action.ravel().tolist(), self.high))
        if not ok:
            self._fail(raw)
        return action

    def _fail(self, raw: Any) -> None:
        if self.name == "landmine":
            raise ValueError(f"landmine must be an action of {self.space} ({self.accepted}), got {raw!r}")
        raise ValueError(f"{self.name} returned {raw!r}, which is not an action of {self.space} ({self.accepted})")


class _Friction(gym.Wrapper):
    """Shared machinery: ``p``/``per`` validation, the seeded generator, firing decisions."""

    friction_name = "friction"
    #: Mixed with the seed so that each wrapper class has its own stream.
    _RNG_OFFSET = 0x0D6E_0000

    def __init__(self, env: gym.Env, p: float, per: str) -> None:
        gym.Wrapper.__init__(self, env)
        self.p = check_probability(p)
        self.per = check_choice(per, "per", PER_VALUES)
        self._rng: np.random.Generator | None = None
        self._uniforms: list[float] = []  # a block of draws for the per-step coin (cheap steps)
        self._episode_fires = False
        self._obs: Any = None
        # Part of the seed: two wrappers of the same class in one stack get different streams.
        self._depth = 0
        inner = env
        while isinstance(inner, gym.Wrapper):
            self._depth += isinstance(inner, _Friction)
            inner = inner.env

    @property
    def rng(self) -> np.random.Generator:
        """This wrapper's own generator (seeded in ``reset(seed=...)``)."""
        if self._rng is None:
            self._rng = np.random.default_rng()
        return self._rng

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), self._RNG_OFFSET, self._depth])
            self._uniforms = []
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        if self.per == "episode":
            self._episode_fires = self.rng.random() < self.p
            self._on_episode_start()
        return obs, info

    def _on_episode_start(self) -> None:
        """Hook for per-episode draws (e.g. a random lag)."""

    def _fires(self) -> bool:
        if self.per == "episode":
            return self._episode_fires
        p = self.p
        if p <= 0.0 or p >= 1.0:
            return p >= 1.0
        return self._uniform() < p

    def _uniform(self) -> float:
        """One U[0, 1) draw from the block (drawn 256 at a time from the seeded generator)."""
        uniforms = self._uniforms
        if not uniforms:
            uniforms = self._uniforms = self.rng.random(256).tolist()
        return uniforms.pop()


class _ActionFriction(_Friction):
    """An action friction: when it fires, it replaces the learner's action and records it."""

    def __init__(self, env: gym.Env, p: float, per: str) -> None:
        super().__init__(env, p, per)
        self._space = _check_action_space(env.action_space, type(self).__name__)
        self._is_box = isinstance(self._space, spaces.Box)

    def _replace(self, action: Any) -> tuple[Any, float, tuple[str, ...]] | None:
        """Return ``(executed_action, reported_log_prob, friction_names)`` or None to let ``action`` run."""
        raise NotImplementedError

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        replacement = self._replace(action)
        if replacement is None:
            result = self.env.step(action)
            self._obs = result[0]
            return result
        else:
            executed, log_prob, names = replacement
            to_env = executed
            if self._is_box:
                space = self._space
                to_env = np.clip(executed, space.low, space.high).astype(space.dtype)
            obs, reward, terminated, truncated, info = self.env.step(to_env)
            info = dict(info)  # never mutate a dict the inner env may keep
            # protocol.record_replacement, inlined (this is the hot path of every firing step)
            self._won = EXECUTED_ACTION not in info  # else an inner replacement ran
            if self._won:
                info[EXECUTED_ACTION] = executed
                info[BEHAVIOR_LOG_PROB] = float(log_prob)
            frictions = info.get(FRICTIONS)
            info[FRICTIONS] = [*frictions, *names] if frictions else list(names)
        self._obs = obs
        return obs, reward, terminated, truncated, info


class _PolicyActorWrapper(_ActionFriction):
    """Acts with a snapshot of the learner's policy, ``lag`` updates old, optionally with noise."""

    def __init__(
        self, env: gym.Env, lag: int, random_lag: bool, noise_std: float, p: float, per: str
    ) -> None:
        super().__init__(env, p, per)
        self.lag, self.random_lag, self.noise_std = _check_policy_actor_args(lag, random_lag, noise_std)
        # lag + 1 snapshots: the one ``lag`` updates old is always held once that many were pushed.
        self.snapshots = PolicySnapshotStore(max_size=self.lag + 1)
        self._episode_lag = self.lag
        self._float_obs = _float_observation_keys(self.observation_space)

    def push_policy_snapshot(self, actor: Actor) -> int:
        """Store a snapshot of the learner's policy and forward it to inner policy-driven wrappers.

        ``actor``: an :class:`~dg_envs.wrappers.Actor`, or an SB3 policy (copied into an
        :class:`~dg_envs.wrappers.SB3PolicyActor`); one built for other spaces than this env's
        is rejected here rather than at the next step.

        Returns how many wrappers of this env stored it (``VecEnv.env_method`` reaches only the
        outermost one, which forwards the snapshot inwards).
        """
        actor = _as_actor(actor, name="actor")
        _check_actor_spaces(actor, self.observation_space, self.action_space, "actor", type(self).__name__)
        self.snapshots.push(actor)
        env = self.env
        while isinstance(env, gym.Wrapper):
            if isinstance(env, _PolicyActorWrapper):
                return 1 + env.push_policy_snapshot(actor)
            env = env.env
        return 1

    def _on_episode_start(self) -> None:
        if self.random_lag:
            self._episode_lag = int(self.rng.integers(0, self.lag + 1))

    def _current_lag(self) -> int:
        if not self.random_lag:
            return self.lag
        if self.per == "episode":
            return self._episode_lag
        return int(self.rng.integers(0, self.lag + 1))

    def _names(self) -> tuple[str, ...]:
        return (self.friction_name,)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._used_lag: int | None = None
        result = super().step(action)
        if self._used_lag is not None and self._won:  # its action ran; the info dict is a fresh copy
            result[4].setdefault(ACTOR_LAG, self._used_lag)
        return result

    def _replace(self, action: Any) -> tuple[Any, float, tuple[str, ...]] | None:
        if not self._fires():
            return None
        lag = self._current_lag()
        actor = self.snapshots.get(lag)
        if actor is None:  # no snapshot yet: the learner's action is the current policy's
            return None
        self._used_lag = min(lag, len(self.snapshots) - 1)
        if self._float_obs:
            _check_observation_finite(self._obs, self._float_obs, self.friction_name)
        actions, log_probs = actor(_batch_of_one(self._obs), self.rng, noise_std=self.noise_std)
        return _as_action(self.env.action_space, actions[0]), float(log_probs[0]), self._names()


class StaleActor(_PolicyActorWrapper, RecordConstructorArgs):
    """Act with the learner's policy as it was ``lag`` learner updates ago.

    The executed action is sampled from a snapshot of the learner's policy ``lag`` updates old
    (``random_lag=True``: the lag is drawn uniformly from ``0..lag``, per step or, with
    ``per="episode"``, once per episode). The learner pushes a snapshot after every update
    (``push_policy_snapshot``; see :mod:`dg_envs.wrappers.actors`). Before ``lag`` updates have
    happened the oldest snapshot held is used. Before any snapshot was pushed the learner's
    action passes through unchanged and nothing is recorded: it *is* a sample of the current
    policy, so it is not stale.

    When the stale actor acts, ``info["executed_action"]`` is its action and
    ``info["behavior_log_prob"]`` the stale policy's exact log-probability of it (what
    importance weighting needs), and ``"stale"`` is in ``info["frictions"]``.

    ``info["actor_lag"]`` is the age of the snapshot that acted (in learner updates: smaller
    than ``lag`` while fewer updates have happened). Batched across the sub-envs of an SB3
    VecEnv: :class:`~dg_envs.wrappers.VecStaleActor`.

    Args:
        env: the environment.
        lag: ``D``, the number of learner updates the actor lags behind (integer >= 0).
        random_lag: draw the lag uniformly from ``0..lag`` (per step or per episode).
        per: ``"step"`` or ``"episode"``: when ``p`` and a random lag are drawn.
        p: probability that the stale actor acts (default 1: always).
        noise_std: Gaussian noise on the stale policy's logits / mean (also a mismatched actor;
            ``"mismatch"`` is then recorded too). Default 0.

    Example:
        >>> import gymnasium as gym
        >>> from stable_baselines3 import PPO
        >>> from dg_envs.wrappers import SB3PolicyActor, StaleActor
        >>> env = StaleActor(gym.make("CartPole-v1"), lag=2)
        >>> _ = env.reset(seed=0)
        >>> "executed_action" in env.step(0)[4]  # no snapshot yet: the learner's action runs
        False
        >>> model = PPO("MlpPolicy", "CartPole-v1", device="cpu", seed=0)
        >>> env.push_policy_snapshot(SB3PolicyActor(model.policy))
        1
        >>> info = env.step(0)[4]
        >>> info["frictions"], info["behavior_log_prob"] < 0
        (['stale'], True)
    """

    friction_name = "stale"
    _RNG_OFFSET = 0x0D6E_0001

    def __init__(
        self,
        env: gym.Env,
        lag: int,
        random_lag: bool = False,
        per: str = "step",
        p: float = 1.0,
        noise_std: float = 0.0,
    ) -> None:
        RecordConstructorArgs.__init__(self, lag=lag, random_lag=random_lag, per=per, p=p, noise_std=noise_std)
        _PolicyActorWrapper.__init__(self, env, lag=lag, random_lag=random_lag, noise_std=noise_std, p=p, per=per)

    def _names(self) -> tuple[str, ...]:
        return ("stale", "mismatch") if self.noise_std > 0 else ("stale",)


class MismatchedActor(_PolicyActorWrapper, RecordConstructorArgs):
    """Act with the learner's current policy perturbed: Gaussian noise on its logits or mean.

    The executed action is sampled from the newest pushed snapshot of the learner's policy with
    i.i.d. ``N(0, noise_std**2)`` noise added to its logits (Discrete, MultiDiscrete) or to the
    mean (Box), fresh noise for every action. ``info["behavior_log_prob"]`` is the log-probability
    under the *perturbed* distribution the action was drawn from. Before any snapshot was pushed
    the learner's action passes through unchanged and nothing is recorded.

    With ``lag > 0`` it perturbs the policy ``lag`` updates old instead (as the reference code's
    stale, noisy actors do; ``"stale"`` is then recorded too). :func:`apply_frictions` uses this
    when both staleness and mismatch are asked for.

    Args:
        env: the environment.
        noise_std: standard deviation of the noise (>= 0).
        p: probability that the mismatched actor acts (default 1: always).
        per: ``"step"`` or ``"episode"``.
        lag: act with the snapshot ``lag`` updates old (default 0: the newest).
        random_lag: draw the lag uniformly from ``0..lag``.

    Example:
        >>> import gymnasium as gym
        >>> from stable_baselines3 import PPO
        >>> from dg_envs.wrappers import MismatchedActor, SB3PolicyActor
        >>> env = MismatchedActor(gym.make("Pendulum-v1"), noise_std=0.5)
        >>> model = PPO("MlpPolicy", "Pendulum-v1", device="cpu", seed=0)
        >>> env.push_policy_snapshot(SB3PolicyActor(model.policy))
        1
        >>> _ = env.reset(seed=0)
        >>> info = env.step(env.action_space.sample())[4]
        >>> info["frictions"], info["executed_action"].shape
        (['mismatch'], (1,))
    """

    friction_name = "mismatch"
    _RNG_OFFSET = 0x0D6E_0002

    def __init__(
        self,
        env: gym.Env,
        noise_std: float,
        p: float = 1.0,
        per: str = "step",
        lag: int = 0,
        random_lag: bool = False,
    ) -> None:
        RecordConstructorArgs.__init__(self, noise_std=noise_std, p=p, per=per, lag=lag, random_lag=random_lag)
        _PolicyActorWrapper.__init__(self, env, lag=lag, random_lag=random_lag, noise_std=noise_std, p=p, per=per)

    def _names(self) -> tuple[str, ...]:
        return ("mismatch", "stale") if self.lag > 0 else ("mismatch",)


BUG_VALUES = ("landmine", "random")


class BuggyActor(_ActionFriction, RecordConstructorArgs):
    """With probability ``p`` a buggy actor replaces the action, and lies about it.

    ``bug="landmine"`` executes a fixed action (default: the space's "zero" action, ``0`` —
    or ``start`` — for Discrete, zeros for MultiDiscrete, ``0`` clipped into a Box; the paper's
    all-zeros answer with ``per="episode"`` on token reversal). ``bug="random"`` executes a
    uniformly random action (standard normal on unbounded Box dimensions). A callable
    ``bug(obs, action, rng) -> action`` executes whatever it returns.

    The actor reports ``info["behavior_log_prob"] = reported_log_prob``: 0.0 by default
    (certainty, the paper's lying actor, so importance weights are wrong too); ``None``
    reports the true log-probability of the bug's distribution (0 for a landmine, the uniform
    log-probability / log-density for ``"random"``; not available for a callable).

    Args:
        env: the environment.
        p: probability of the bug, per step or per episode.
        bug: ``"landmine"``, ``"random"`` or a callable ``bug(obs, action, rng) -> action``.
        landmine: the landmine action (must lie in the action space).
        reported_log_prob: the log-probability the actor reports, or ``None`` for the true one.
        per: ``"step"`` or ``"episode"``.

    Example:
        >>> import gymnasium as gym
        >>> from dg_envs.wrappers import BuggyActor
        >>> env = BuggyActor(gym.make("CartPole-v1"), p=1.0)
        >>> _ = env.reset(seed=0)
        >>> info = env.step(1)[4]
        >>> int(info["executed_action"]), info["behavior_log_prob"], info["frictions"]
        (0, 0.0, ['bug'])
    """

    friction_name = "bug"
    _RNG_OFFSET = 0x0D6E_0003

    def __init__(
        self,
        env: gym.Env,
        p: float,
        bug: str | Callable[[Any, Any, np.random.Generator], Any] = "landmine",
        landmine: Any = None,
        reported_log_prob: float | None = 0.0,
        per: str = "step",
    ) -> None:
        RecordConstructorArgs.__init__(
            self, p=p, bug=bug, landmine=landmine, reported_log_prob=reported_log_prob, per=per
        )
        _ActionFriction.__init__(self, env, p, per)
        if not callable(bug):
            check_choice(bug, "bug", BUG_VALUES + ("a callable bug(obs, action, rng) -> action",))
        self.bug = bug
        space = env.action_space
        self._check_bug_action = _ActionCheck(space, "bug") if callable(bug) else None
        self.landmine = _zero_action(space) if landmine is None else _ActionCheck(space, "landmine", in_bounds=True)(landmine)
        if reported_log_prob is None:
            if callable(bug):
                raise ValueError(
                    "reported_log_prob=None (report the true log-probability) needs bug='landmine' or "
                    "bug='random'; a callable bug has no known distribution: pass a float"
                )
            self.reported_log_prob = None
        else:
            try:
                self.reported_log_prob = _check_reported_log_prob(reported_log_prob, space)
            except ValueError as error:
                raise ValueError(f"{error} (or None: the bug's true log-probability)") from None
        # The uniform log-probability does not depend on the action unless a Box is unbounded.
        bounded_box = self._is_box and bool(np.all(space.bounded_below & space.bounded_above))
        constant = not self._is_box or bounded_box
        self._uniform_log_prob = _uniform_log_prob(space, _zero_action(space)) if constant else None
        self._discrete_n = int(space.n) if isinstance(space, spaces.Discrete) else 0
        self._box_low = space.low.astype(np.float64) if bounded_box else None
        self._box_width = (space.high.astype(np.float64) - self._box_low) if bounded_box else None

    def _replace(self, action: Any) -> tuple[Any, float, tuple[str, ...]] | None:
        if not self._fires():
            return None
        space = self._space
        if self.bug == "landmine":
            # A numpy scalar is immutable; an array is copied (infos must not share data).
            executed = self.landmine if isinstance(self.landmine, np.integer) else self.landmine.copy()
            true_log_prob = 0.0
        elif self.bug == "random":
            if self._discrete_n:  # a scalar draw from the block: rng.integers costs ~2 us a call
                executed = np.int64(space.start + min(int(self._uniform() * self._discrete_n), self._discrete_n - 1))
            elif self._box_width is not None:  # bounded Box: ~5 us instead of ~30 us
                executed = (self._box_low + self._box_width * self.rng.random(space.shape)).astype(space.dtype)
            else:
                executed = _uniform_action(space, self.rng)
            true_log_prob = self._uniform_log_prob if self._uniform_log_prob is not None else _uniform_log_prob(space, executed)
        else:
            executed, true_log_prob = self._check_bug_action(self.bug(self._obs, action, self.rng)), 0.0
        reported = true_log_prob if self.reported_log_prob is None else self.reported_log_prob
        return executed, reported, ("bug",)


class RareDiscovery(_ActionFriction, RecordConstructorArgs):
    """With probability ``p`` the executed action is the correct one: a rare, lucky success.

    The correct action is ``env.get_wrapper_attr("optimal_action")()`` (found through the
    wrapper stack; every ``dg_envs`` environment has it) or ``oracle(obs)`` when given (e.g. an
    SB3 expert: ``lambda o: model.predict(o, deterministic=True)[0]``).

    Reported log-probability: ``reported_log_prob``, default 0.0 — the discovering actor is a
    deterministic oracle, so, having fired, it chose this action with probability 1 (the
    reference code likewise injects the correct answer without a behaviour probability). The
    point of the friction is that the action is *surprising to the learner*; DG measures that
    with the learner's own log-probability, so the report matters only to importance weighting.

    Put it innermost of the action frictions (:data:`CANONICAL_ORDER`): the innermost
    replacement wins, which gives the paper's precedence correct > bug > normal. An outer
    :class:`RewardCorruption` leaves the reward of a discovery step clean (correct > random).

    Args:
        env: the environment.
        p: probability of a discovery, per step or per episode.
        oracle: ``oracle(obs) -> action``; default: the env's ``optimal_action()``.
        reported_log_prob: the log-probability reported for the discovered action.
        per: ``"step"`` or ``"episode"``.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> from dg_envs.wrappers import RareDiscovery
        >>> env = RareDiscovery(gym.make("dg_envs/KArmedBandit-v0"), p=1.0)
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(0)
        >>> info["frictions"], info["behavior_log_prob"]
        (['discovery'], 0.0)
    """

    friction_name = "discovery"
    _RNG_OFFSET = 0x0D6E_0005

    def __init__(
        self,
        env: gym.Env,
        p: float,
        oracle: Callable[[Any], Any] | None = None,
        reported_log_prob: float = 0.0,
        per: str = "step",
    ) -> None:
        RecordConstructorArgs.__init__(self, p=p, oracle=oracle, reported_log_prob=reported_log_prob, per=per)
        _ActionFriction.__init__(self, env, p, per)
        if oracle is not None and not callable(oracle):
            raise ValueError(f"oracle must be None or a callable oracle(obs) -> action, got {oracle!r}")
        if oracle is None:
            try:
                env.get_wrapper_attr("optimal_action")
            except AttributeError:
                raise ValueError(
                    "oracle: this env has no optimal_action(); pass oracle=callable(obs) -> action "
                    "(accepted: None for envs with optimal_action(), or a callable)"
                ) from None
        self.oracle = oracle
        self._check_oracle_action = _ActionCheck(self._space, "oracle")
        self.reported_log_prob = _check_reported_log_prob(reported_log_prob, self._space)

    def _replace(self, action: Any) -> tuple[Any, float, tuple[str, ...]] | None:
        if not self._fires():
            return None
        if self.oracle is None:  # the env's own optimal_action(): trusted, not checked
            correct = _as_action(self._space, self.env.get_wrapper_attr("optimal_action")())
        else:
            correct = self._check_oracle_action(self.oracle(self._obs))
        return correct, self.reported_log_prob, ("discovery",)


MODE_VALUES = ("coin", "gaussian", "sign_flip")


def _finite_reward_range(env: gym.Env) -> tuple[float, float]:
    """The env's ``reward_range`` if it declares a finite one (found through the stack), else (0, 1)."""
    try:
        low, high = (float(x) for x in env.get_wrapper_attr("reward_range"))
    except (AttributeError, TypeError, ValueError):
        return 0.0, 1.0
    return (low, high) if np.isfinite(low) and np.isfinite(high) and low < high else (0.0, 1.0)


class RewardCorruption(_Friction, RecordConstructorArgs):
    """With probability ``p`` the reward is corrupted; the clean one is kept in ``info["true_reward"]``.

    Modes: ``"coin"`` replaces the reward by ``low`` or ``high`` with probability 1/2 each
    (the paper's random 0/1 reward; by default the bounds of the env's ``reward_range`` when it
    declares a finite one, else 0 and 1, which fit our tasks, whose rewards lie in [0, 1] — set
    them for other reward scales; Gymnasium 1.x envs rarely declare a range); ``"gaussian"`` adds ``N(0, noise_std**2)``;
    ``"sign_flip"`` negates it. ``"reward_corruption"`` is added to ``info["frictions"]`` when
    the friction fires, and ``info["true_reward"]`` is present exactly when the reward changed
    (a coin that lands on the true value, or a flipped 0, changes nothing).

    A step where an inner :class:`RareDiscovery` fired (``"discovery"`` in
    ``info["frictions"]``) keeps its clean reward: the paper's precedence correct > random.
    Pass ``spare_discoveries=False`` to corrupt those too.

    ``terminal_only=True`` corrupts only the reward of the step that ends an episode: for
    tasks whose reward comes at the end (token reversal's sequence reward), where the paper
    replaces the *answer's* reward and a coin on every zero intermediate reward would not be
    the same friction.

    Args:
        env: the environment.
        p: probability of corruption, per step or per episode.
        mode: ``"coin"``, ``"gaussian"`` or ``"sign_flip"``.
        low, high: the two rewards of ``"coin"`` (default: the env's finite ``reward_range``,
            else 0 and 1).
        noise_std: standard deviation of ``"gaussian"`` noise (default 1).
        per: ``"step"`` or ``"episode"``.
        spare_discoveries: leave the reward of a discovery step clean (default True).
        terminal_only: corrupt only the reward of an episode's last step (default False).

    Example:
        >>> import gymnasium as gym
        >>> from dg_envs.wrappers import RewardCorruption
        >>> env = RewardCorruption(gym.make("CartPole-v1"), p=1.0, mode="sign_flip")
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(0)
        >>> reward, info["true_reward"], info["frictions"]
        (-1.0, 1.0, ['reward_corruption'])
    """

    friction_name = "reward_corruption"
    _RNG_OFFSET = 0x0D6E_0004

    def __init__(
        self,
        env: gym.Env,
        p: float,
        mode: str = "coin",
        low: float | None = None,
        high: float | None = None,
        noise_std: float = 1.0,
        per: str = "step",
        spare_discoveries: bool = True,
        terminal_only: bool = False,
    ) -> None:
        RecordConstructorArgs.__init__(
            self, p=p, mode=mode, low=low, high=high, noise_std=noise_std, per=per, spare_discoveries=spare_discoveries,
            terminal_only=terminal_only,
        )
        _Friction.__init__(self, env, p, per)
        self.mode = check_choice(mode, "mode", MODE_VALUES)
        range_low, range_high = _finite_reward_range(env)
        self.low = range_low if low is None else check_real(low, "low")
        self.high = range_high if high is None else check_real(high, "high")
        if self.low > self.high:
            raise ValueError(
                f"low must be <= high (the coin's two rewards; set both for this reward scale), got low={self.low} and high={self.high}"
            )
        self.noise_std = check_real(noise_std, "noise_std", low=0.0)
        self.spare_discoveries = check_bool(spare_discoveries, "spare_discoveries")
        self.terminal_only = check_bool(terminal_only, "terminal_only")

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        result = self.env.step(action)
        if self.terminal_only and not (result[2] or result[3]):
            return result
        if not self._fires():
            return result
        obs, reward, terminated, truncated, info = result
        if self.spare_discoveries and "discovery" in info.get(FRICTIONS, ()):
            return obs, reward, terminated, truncated, info
        if self.mode == "coin":
            corrupted = self.high if self.rng.random() < 0.5 else self.low
        elif self.mode == "gaussian":
            corrupted = float(reward) + self.noise_std * self.rng.standard_normal()
        else:
            corrupted = -float(reward)
        info = dict(info)
        if FRICTIONS in info:
            info[FRICTIONS] = list(info[FRICTIONS])
        record_friction(info, "reward_corruption")
        if corrupted != float(reward):
            info[TRUE_REWARD] = float(reward)
            reward = float(corrupted)
        return obs, reward, terminated, truncated, info


#: The order :func:`apply_frictions` stacks the wrappers in, innermost first. The innermost
#: action replacement is the one the environment executes, so a discovery beats a bug, which
#: beats the (stale / mismatched) actor — the paper's precedence correct > bug > normal.
#: Reward corruption is outermost: it sees an inner discovery and spares it (correct > random)
#: and corrupts the reward of a bug step (random > bug).
CANONICAL_ORDER = ("discovery", "bug", "mismatch", "stale", "reward_corruption")

_FIRST_ARG = {"discovery": "p", "bug": "p", "mismatch": "noise_std", "stale": "lag", "reward_corruption": "p"}


def _kwargs(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return {_FIRST_ARG[name]: value}
    raise ValueError(f"{name} must be None, a number ({_FIRST_ARG[name]}) or a dict of keyword arguments, got {value!r}")


def apply_frictions(
    env: gym.Env,
    stale: Any = None,
    mismatch: Any = None,
    bug: Any = None,
    reward_corruption: Any = None,
    discovery: Any = None,
) -> gym.Env:
    """Wrap ``env`` in the asked-for frictions, stacked in :data:`CANONICAL_ORDER`.

    Each argument is ``None`` (off), a number — the lag for ``stale``, the noise std for
    ``mismatch``, the probability ``p`` for the others — or a dict of that wrapper's keyword
    arguments. Innermost first: :class:`RareDiscovery`, :class:`BuggyActor`, the policy actor,
    :class:`RewardCorruption`. When both ``stale`` and ``mismatch`` are given they make one
    actor, a :class:`MismatchedActor` with the stale lag (noise on the stale policy, as in the
    reference code), because two stacked policy actors would leave only the inner one acting.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> from dg_envs.wrappers import apply_frictions
        >>> env = apply_frictions(gym.make("dg_envs/KArmedBandit-v0"), stale=3, bug=0.1,
        ...                       reward_corruption={"p": 0.1, "mode": "coin"}, discovery=0.01)
        >>> [type(layer).__name__ for layer in (env, env.env, env.env.env, env.env.env.env)]
        ['RewardCorruption', 'StaleActor', 'BuggyActor', 'RareDiscovery']
    """
    given = {
        name: _kwargs(name, value)
        for name, value in (
            ("stale", stale),
            ("mismatch", mismatch),
            ("bug", bug),
            ("reward_corruption", reward_corruption),
            ("discovery", discovery),
        )
        if value is not None
    }
    if "stale" in given and "mismatch" in given:
        stale_kwargs, mismatch_kwargs = given.pop("stale"), given["mismatch"]
        for key in ("p", "per"):
            if key in stale_kwargs and key in mismatch_kwargs and stale_kwargs[key] != mismatch_kwargs[key]:
                raise ValueError(f"stale and mismatch: {key} differs ({stale_kwargs[key]!r} vs {mismatch_kwargs[key]!r}); they act as one actor")
        mismatch_kwargs.update({k: v for k, v in stale_kwargs.items() if k not in mismatch_kwargs})
    classes = {
        "discovery": RareDiscovery,
        "bug": BuggyActor,
        "mismatch": MismatchedActor,
        "stale": StaleActor,
        "reward_corruption": RewardCorruption,
    }
    for name in CANONICAL_ORDER:
        if name in given:
            env = classes[name](env, **given[name])
    return env
