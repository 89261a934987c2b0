"""Action-space maths shared by the frictions, for one action and for a batch of rows.

What an action friction needs to know about the action space: which spaces it supports, the
"zero" action, a uniformly random action and its log-probability, how to check an action a
user's callable returned, and the finiteness check of an observation a policy acts on. Each
comes in a single-env form (scalar fast paths: a per-env wrapper steps one action at a time)
and a batched form (the vector wrappers: one NumPy call for all rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dg_envs.validation import check_real

SUPPORTED_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.Box)


def check_action_space(space: Any, owner: str) -> gym.Space:
    """The (single) action space an action friction supports: Discrete, MultiDiscrete or Box."""
    if not isinstance(space, SUPPORTED_SPACES):
        raise ValueError(f"env.action_space must be Discrete, MultiDiscrete or Box for {owner}, got {space}")
    return space


def check_reported_log_prob(value: Any, space: gym.Space) -> float:
    """The log-probability a replacing actor reports: finite, and <= 0 for discrete actions.

    >>> check_reported_log_prob(np.float32(-0.5), spaces.Discrete(3))
    -0.5
    >>> check_reported_log_prob(0.7, spaces.Discrete(3))
    Traceback (most recent call last):
    ...
    ValueError: reported_log_prob must be a finite real number <= 0.0, got 0.7
    """
    return check_real(value, "reported_log_prob", high=None if isinstance(space, spaces.Box) else 0.0)


# -- observations ---------------------------------------------------------------------------------
def float_observation_keys(space: gym.Space) -> bool | tuple[str, ...]:
    """What to check for finiteness in an observation: True (the array), the float keys of a Dict, or False."""
    if isinstance(space, spaces.Box):
        return space.dtype.kind == "f"
    if isinstance(space, spaces.Dict):
        return tuple(key for key, sub in space.spaces.items() if isinstance(sub, spaces.Box) and sub.dtype.kind == "f")
    return False


def all_finite(x: np.ndarray) -> bool:
    """Whether every entry of a float array is finite.

    Small arrays go through a list: a few hundred ns where ``np.isfinite(x).all()`` costs a
    few us (the reduction's set-up dominates).
    """
    if x.size <= 64:
        return all(map(math.isfinite, x.ravel().tolist()))
    return bool(np.isfinite(x).all())


def check_observation_finite(obs: Any, keys: bool | tuple[str, ...], owner: str) -> None:
    """Raise if the observation(s) a policy-driven actor is about to act on hold NaN or inf.

    A policy's forward pass on NaN gives NaN logits, which sample action 0 with a NaN
    log-probability: a silent failure. ``keys`` from :func:`float_observation_keys`.
    """
    if keys is True:
        finite = all_finite(np.asarray(obs))
    elif keys:
        finite = all(all_finite(np.asarray(obs[key])) for key in keys)
    else:
        return
    if not finite:
        raise ValueError(
            f"the observation given to the {owner} actor is non-finite (NaN or inf): its policy cannot act on it; "
            "check the environment (or an observation wrapper inside this one)"
        )


def batch_of_one(obs: Any) -> Any:
    """One observation as a batch of one (a Dict observation key by key)."""
    if isinstance(obs, dict):
        return {key: np.asarray(value)[None] for key, value in obs.items()}
    return np.asarray(obs)[None]


def take_rows(batch: Any, idx: np.ndarray | slice) -> Any:
    """Rows ``idx`` of a batched observation (an array, or a dict / tuple of arrays)."""
    if isinstance(batch, dict):
        return {key: value[idx] for key, value in batch.items()}
    if isinstance(batch, tuple):
        return tuple(value[idx] for value in batch)
    return batch[idx]


# -- actions ------------------------------------------------------------------------------------
def zero_action(space: gym.Space) -> Any:
    """The space's "zero" action: 0 (or ``start``) for Discrete, zeros for MultiDiscrete, 0 clipped into a Box."""
    if isinstance(space, spaces.Discrete):
        return np.int64(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start, dtype=space.dtype).copy()
    return np.clip(np.zeros(space.shape), space.low, space.high).astype(space.dtype)


def as_action(space: gym.Space, action: Any) -> Any:
    """``action`` as one action of ``space`` (a copy: infos must not share data)."""
    if isinstance(space, spaces.Discrete):
        if isinstance(action, (int, np.integer)):  # the common case, ~10x cheaper than asarray
            return np.int64(action)
        return np.int64(np.asarray(action).reshape(()))
    return np.array(action, dtype=space.dtype).reshape(space.shape)


def as_actions(space: gym.Space, actions: Any, k: int) -> np.ndarray:
    """``k`` trusted actions of ``space`` as an array of shape ``(k, *space.shape)`` in its dtype."""
    dtype = np.int64 if isinstance(space, spaces.Discrete) else space.dtype
    return np.asarray(actions, dtype=dtype).reshape((k, *space.shape))


class RandomActions:
    """Uniformly random actions of a space and their log-probability (log-density for a Box).

    Discrete / MultiDiscrete: uniform over the actions; Box: uniform on bounded dimensions,
    standard normal on unbounded ones (then clipped to a half-bounded side). ``one`` draws a
    single action (a Discrete one from ``uniform()``, a U[0, 1) draw the caller provides, so
    that a per-env wrapper takes it from its block of uniforms); ``batch`` draws ``k`` at once.

    >>> random = RandomActions(spaces.Discrete(4, start=2))
    >>> int(random.one(np.random.default_rng(0), lambda: 0.6)), random.log_prob(None)
    (4, -1.3862943611198906)
    >>> random.batch(np.random.default_rng(0), 3).shape
    (3,)
    """

    def __init__(self, space: gym.Space) -> None:
        self.space = space
        self.is_box = isinstance(space, spaces.Box)
        bounded = space.bounded_below & space.bounded_above if self.is_box else None
        self._bounded_box = self.is_box and bool(np.all(bounded))
        self._discrete_n = int(space.n) if isinstance(space, spaces.Discrete) else 0
        self._discrete_start = int(space.start) if self._discrete_n else 0
        if self.is_box:
            self._bounded = bounded
            self._low = np.where(bounded, space.low, 0.0).astype(np.float64)
            self._width = np.where(bounded, space.high.astype(np.float64) - space.low.astype(np.float64), 1.0)
        # The log-probability does not depend on the action unless a Box has unbounded dimensions.
        self._constant = None if (self.is_box and not self._bounded_box) else self._log_prob_of(zero_action(space))

    def one(self, rng: np.random.Generator, uniform: Callable[[], float]) -> Any:
        """One random action (``uniform()``: a U[0, 1) draw, asked for by Discrete spaces only)."""
        if self._discrete_n:  # a scalar mapping: rng.integers costs ~2 us a call
            n = self._discrete_n
            return np.int64(self._discrete_start + min(int(uniform() * n), n - 1))
        space = self.space
        if self._bounded_box:  # ~5 us instead of ~30 us
            return (self._low + self._width * rng.random(space.shape)).astype(space.dtype)
        if isinstance(space, spaces.MultiDiscrete):
            return (space.start + rng.integers(space.nvec)).astype(space.dtype)
        action = np.where(self._bounded, self._low + self._width * rng.random(space.shape), rng.standard_normal(space.shape))
        return np.clip(action, space.low, space.high).astype(space.dtype)

    def batch(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """``k`` random actions, shape ``(k, *space.shape)``."""
        space = self.space
        if self._discrete_n:
            n = self._discrete_n
            return self._discrete_start + np.minimum((rng.random(k) * n).astype(np.int64), n - 1)
        if isinstance(space, spaces.MultiDiscrete):
            return (space.start + rng.integers(space.nvec, size=(k, *space.shape))).astype(space.dtype)
        shape = (k, *space.shape)
        uniform = self._low + self._width * rng.random(shape)
        if self._bounded_box:
            return uniform.astype(space.dtype)
        action = np.where(self._bounded, uniform, rng.standard_normal(shape))
        return np.clip(action, space.low, space.high).astype(space.dtype)

    def log_prob(self, action: Any) -> float:
        """The log-probability (log-density) of one action (any action when it is constant)."""
        return self._constant if self._constant is not None else self._log_prob_of(action)

    def log_probs(self, actions: np.ndarray) -> np.ndarray:
        """The log-probabilities of a batch of actions, shape ``(k,)``."""
        if self._constant is not None:
            return np.full(len(actions), self._constant)
        return self._log_prob_of(actions, axis=tuple(range(1, np.ndim(actions))))  # a Box with unbounded dimensions

    def _log_prob_of(self, action: Any, axis: Any = None) -> Any:
        """One action's log-probability (``axis=None``), or a batch's (summed over ``axis``)."""
        space = self.space
        if isinstance(space, spaces.Discrete):
            return -float(np.log(space.n))
        if isinstance(space, spaces.MultiDiscrete):
            return -float(np.log(space.nvec.astype(np.float64)).sum())
        gauss = -0.5 * np.asarray(action, dtype=np.float64) ** 2 - 0.5 * np.log(2 * np.pi)
        log_prob = np.where(self._bounded, -np.log(self._width), gauss).sum(axis=axis)
        return float(log_prob) if axis is None else log_prob


class ActionCheck:
    """``check(raw)``: ``raw`` as an action of ``space`` (a copy), or a ``ValueError`` naming ``name`` and the space.

    For what a user gives, or a user's callable returns (``landmine``, ``oracle``, ``bug``), so
    that a wrong action fails at the step that produced it, not inside the environment or,
    later, inside training. Discrete / MultiDiscrete: integers in the space, shaped as the space
    or as a batch of one. Box: numbers of that shape, finite; outside the bounds too unless
    ``in_bounds`` (an actor's sample is reported raw and executed clipped). Built once per
    wrapper (bounds precomputed: about 1 us a call), and picklable.

    ``check.batch(raw, k)`` checks a batch of ``k`` actions (what a vector wrapper's callable
    returns for the ``k`` sub-envs where it fired) and returns an array ``(k, *space.shape)``.

    >>> ActionCheck(spaces.Discrete(10), "oracle")(42)
    Traceback (most recent call last):
    ...
    ValueError: oracle returned 42, which is not an action of Discrete(10) (an integer in 0..9)
    >>> ActionCheck(spaces.Discrete(10), "oracle").batch([3, 4], 2)
    array([3, 4])
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
        arr = self._array(raw)
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
                ok = all_finite(action) and (not self.in_bounds or bool(((action >= self.low) & (action <= self.high)).all()))
            else:
                ok = all(low <= a < high for low, a, high in zip(self.low, action.ravel().tolist(), self.high))
        if not ok:
            self._fail(raw)
        return action

    def batch(self, raw: Any, k: int) -> np.ndarray:
        arr = self._array(raw)
        if arr is None or arr.dtype.kind not in self.kinds or arr.shape != (k, *self.shape):
            self._fail(raw, k)
        if self.discrete:
            actions = arr.astype(np.int64)
            ok = bool(((actions >= self.low) & (actions < self.high)).all())
        else:
            actions = np.array(arr, dtype=self.dtype)
            if self.box:
                ok = bool(np.isfinite(actions).all()) and (
                    not self.in_bounds or bool(((actions >= self.low) & (actions <= self.high)).all())
                )
            else:
                ok = bool(((actions >= np.asarray(self.low)) & (actions < np.asarray(self.high))).all())
        if not ok:
            self._fail(raw, k)
        return actions

    @staticmethod
    def _array(raw: Any) -> np.ndarray | None:
        if type(raw) is np.ndarray:
            return raw
        try:
            return None if isinstance(raw, (str, bytes)) else np.asarray(raw)
        except (TypeError, ValueError):  # a ragged list, an object numpy cannot take
            return None

    def _fail(self, raw: Any, k: int | None = None) -> None:
        if self.name == "landmine":
            raise ValueError(f"landmine must be an action of {self.space} ({self.accepted}), got {raw!r}")
        what = f"an action of {self.space}" if k is None else f"a batch of {k} actions of {self.space}, one per row"
        raise ValueError(f"{self.name} returned {raw!r}, which is not {what} ({self.accepted})")
