"""What every friction shares: its specification, and its two executions.

A friction is **specified once**, by a frozen :class:`FrictionSpec` dataclass: its parameters
with their defaults, checked in ``__post_init__`` (through :mod:`dg_envs.validation`), the
name it writes into ``info["frictions"]`` and its random stream. It is **executed twice**:

* :class:`EnvFriction` — a ``gymnasium.Wrapper`` around one env;
* :class:`VectorFriction` — a ``gymnasium.vector.VectorWrapper`` around a whole ``VectorEnv``,
  batched (NumPy over sub-envs, no Python loop over them).

Both take the spec's fields as their constructor arguments (one signature, from the spec),
record them with ``RecordConstructorArgs``, expose them as attributes (``wrapper.p``, ...),
decide when the friction fires (probability ``p``, ``per="step"`` or ``per="episode"``), own a
generator seeded in ``reset(seed=...)``, keep the observation an actor acts on, and, for an
action friction, run the replace-and-record step of :mod:`dg_envs.wrappers.protocol`. A
friction module adds its semantics: ``_replace`` (what replaces the action) and ``_bind``
(the checks that need the env's spaces).

**Seeding.** A per-env wrapper seeds ``np.random.default_rng([seed, stream, depth])`` with the
spec's ``stream`` (one per friction) and ``depth``, the number of friction wrappers below it, so
stacked wrappers draw from independent streams (two of the same friction included). A vector
wrapper seeds ``[seed, stream, depth, VECTOR_STREAM]`` from an int seed (a list of seeds, as a
``SyncVectorEnv`` takes them, is mixed in whole). The seed goes to the inner env unchanged, so
``p=0`` leaves the trajectory identical to the unwrapped env's. Before the first seeded reset a
wrapper draws from an unseeded generator.

**Episodes of a vector env.** A vector wrapper follows each sub-env's episodes in the inner
env's autoreset mode (``metadata["autoreset_mode"]``, ``NEXT_STEP`` when absent, as Gymnasium
assumes): in ``NEXT_STEP`` the step after a sub-env's episode ended is a reset step that ignores
the action, on which no friction fires or records, and its new episode starts there; in
``SAME_STEP`` the new episode starts with the next step; a partial
``reset(options={"reset_mask": mask})`` starts new episodes where ``mask`` is set. Per-episode
draws are redrawn exactly for the sub-envs whose new episode starts.
"""

from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass, fields
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from dg_envs.validation import check_choice, check_probability
from dg_envs.wrappers._spaces import check_action_space
from dg_envs.wrappers.protocol import VectorStepRecord, record_replacement

__all__ = ["PER_VALUES", "FrictionSpec", "EnvFriction", "VectorFriction"]

#: Accepted values of ``per``.
PER_VALUES = ("step", "episode")

#: Mixed into a vector wrapper's seed: its stream differs from a per-env wrapper's of the same seed.
VECTOR_STREAM = 0x7EC7


@dataclass(frozen=True)
class FrictionSpec:
    """Base of the friction specifications: every friction has ``p`` and ``per``.

    A subclass declares its fields (in the order of its wrappers' positional arguments), the
    class variables ``name`` (from :mod:`~dg_envs.wrappers.protocol`) and ``stream``, and checks
    its own fields in ``__post_init__`` after calling this one. Checked values are stored
    normalised (Python ``float`` / ``int`` / ``bool``).
    """

    name: ClassVar[str]
    #: Mixed into the seed: each friction draws from its own stream.
    stream: ClassVar[int]

    def __post_init__(self) -> None:
        self._set("p", check_probability(getattr(self, "p")))
        self._set("per", check_choice(getattr(self, "per"), "per", PER_VALUES))

    def _set(self, field: str, value: Any) -> None:
        object.__setattr__(self, field, value)  # a frozen dataclass normalising its own fields

    @property
    def names(self) -> tuple[str, ...]:
        """The names written into ``info["frictions"]`` when it fires."""
        return (self.name,)

    def arguments(self) -> dict[str, Any]:
        """The fields as keyword arguments of the wrappers."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def signature(cls, first: str) -> inspect.Signature:
        """The wrappers' constructor signature: ``first`` (the env), then the spec's fields."""
        params = [inspect.Parameter(first, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in inspect.signature(cls).parameters.values()]
        return inspect.Signature(params)


class _Execution(RecordConstructorArgs):
    """The part both executions share: construction from a spec and the parameters as attributes."""

    #: The friction's specification class (set by each wrapper class).
    spec_class: ClassVar[type[FrictionSpec]]
    #: Whether the friction replaces the action (checks the action space, runs the replace-and-record step).
    replaces_action: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "spec_class" in cls.__dict__:  # one signature, the spec's, for help() and the docs
            cls.__signature__ = cls.spec_class.signature("env")  # type: ignore[attr-defined]

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        self._setup(env, self.spec_class(*args, **kwargs))

    @classmethod
    def from_spec(cls, env: Any, spec: FrictionSpec) -> Any:
        """The wrapper of ``env`` for an already checked ``spec`` (what :func:`~dg_envs.wrappers.apply_frictions` uses)."""
        if not isinstance(spec, cls.spec_class):
            raise TypeError(f"spec must be a {cls.spec_class.__name__} for {cls.__name__}, got {spec!r}")
        wrapper = cls.__new__(cls)
        wrapper._setup(env, spec)
        return wrapper

    def _record(self, spec: FrictionSpec) -> None:
        arguments = spec.arguments()
        RecordConstructorArgs.__init__(self, **arguments)
        self.friction_spec = spec
        self.__dict__.update(arguments)  # wrapper.p, wrapper.lag, ...: the checked values
        self._names = spec.names
        self._rng: np.random.Generator | None = None
        self._obs: Any = None

    def _bind(self) -> None:
        """Hook: the checks and precomputations that need the env's spaces (once, at construction)."""

    def _on_seed(self) -> None:
        """Hook: draws made when ``reset(seed=...)`` has just seeded :attr:`rng` (a fixed logit bias)."""

    @property
    def rng(self) -> np.random.Generator:
        """This wrapper's own generator (seeded in ``reset(seed=...)``)."""
        if self._rng is None:
            self._rng = np.random.default_rng()
        return self._rng


class EnvFriction(_Execution, gym.Wrapper):
    """A friction around one env: fires per step (a coin per step) or per episode (a coin at reset)."""

    def _setup(self, env: gym.Env, spec: FrictionSpec) -> None:
        gym.Wrapper.__init__(self, env)
        self._record(spec)
        self._uniforms: list[float] = []  # a block of draws for the per-step coin (cheap steps)
        self._episode_fires = False
        self._depth = 0
        inner = env
        while isinstance(inner, gym.Wrapper):
            self._depth += isinstance(inner, EnvFriction)
            inner = inner.env
        if self.replaces_action:
            self._space = check_action_space(env.action_space, type(self).__name__)
            self._is_box = isinstance(self._space, spaces.Box)
        self._bind()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), self.friction_spec.stream, self._depth])
            self._uniforms = []
            self._on_seed()
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        if self.per == "episode":
            self._episode_fires = self.rng.random() < self.p
            self._start_episode()
        return obs, info

    def _start_episode(self) -> None:
        """Hook for other per-episode draws (a random lag)."""

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

    def _replace(self, action: Any) -> tuple[Any, float, int | None] | None:
        """``(executed_action, reported_log_prob, actor_lag or None)``, or None to let ``action`` run."""
        raise NotImplementedError

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        replacement = self._replace(action)
        if replacement is None:
            result = self.env.step(action)
            self._obs = result[0]
            return result
        executed, log_prob, actor_lag = replacement
        to_env = executed
        if self._is_box:  # reported as sampled, executed clipped into the Box
            space = self._space
            to_env = np.clip(executed, space.low, space.high).astype(space.dtype)
        obs, reward, terminated, truncated, info = self.env.step(to_env)
        info = dict(info)  # never mutate a dict the inner env may keep
        record_replacement(info, executed, log_prob, self._names, True, actor_lag)
        self._obs = obs
        return obs, reward, terminated, truncated, info


def _vector_seed(seed: Any, stream: int, depth: int) -> list[int] | None:
    """The entropy of a vector wrapper's generator for ``reset(seed=seed)``, or None to keep the generator."""
    if seed is None:
        return None
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        return [int(seed), stream, depth, VECTOR_STREAM]
    seeds = list(seed)
    if all(s is None for s in seeds):
        return None
    return [stream, depth, VECTOR_STREAM, len(seeds), *(0 if s is None else int(s) + 1 for s in seeds)]


class VectorFriction(_Execution, VectorWrapper):
    """A friction around a whole vector env: one decision per sub-env, drawn for all at once."""

    def _setup(self, env: VectorEnv, spec: FrictionSpec) -> None:
        if not isinstance(env, VectorEnv):
            hint = f"; around a single env use dg_envs.wrappers.{type(self).__name__}" if isinstance(env, gym.Env) else ""
            raise TypeError(f"env must be a gymnasium.vector.VectorEnv, got {type(env).__name__}{hint}")
        VectorWrapper.__init__(self, env)
        self._record(spec)
        n = self.num_envs
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self._autoreset_mode = AutoresetMode(mode)
        self._next_step = self._autoreset_mode == AutoresetMode.NEXT_STEP  # (an Enum comparison per step costs)
        self._same_step = self._autoreset_mode == AutoresetMode.SAME_STEP
        self._all_true = np.ones(n, dtype=bool)  # read-only: never written through
        self._resetting = np.zeros(n, dtype=bool)  # NEXT_STEP: sub-envs whose next step is a reset step
        self._all_live = True  # no sub-env is in a reset step (the common case: skips a mask)
        self._episode_fires = np.zeros(n, dtype=bool)
        self._any_episode_fires = False
        self._depth = 0
        inner = env
        while isinstance(inner, VectorWrapper):
            self._depth += isinstance(inner, VectorFriction)
            inner = inner.env
        if self.replaces_action:
            self._space = check_action_space(env.single_action_space, type(self).__name__)
            self._is_box = isinstance(self._space, spaces.Box)
        self._bind()

    # -- episodes -------------------------------------------------------------------------------
    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        mask = (options or {}).get("reset_mask")
        starts = self._all_true if mask is None else np.array(mask, dtype=bool)  # a copy: inner envs pop it
        entropy = _vector_seed(seed, self.friction_spec.stream, self._depth)
        if entropy is not None:
            self._rng = np.random.default_rng(entropy)
            self._on_seed()
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        self._resetting = self._resetting & ~starts
        self._all_live = not np.count_nonzero(self._resetting)
        if self.per == "episode":
            self._start_episodes(starts)
        return obs, info

    def _end_step(self, record: VectorStepRecord) -> None:
        """After an inner step: which sub-envs start a new episode, and which step next in a reset step."""
        starts = None
        if self._next_step:
            if not self._all_live:
                starts = self._resetting  # they just took their reset step
            if record.any_done or not self._all_live:
                self._resetting = record.dones
                self._all_live = not record.any_done
        elif self._same_step and record.any_done:
            starts = record.dones
        if starts is not None and self.per == "episode":
            self._start_episodes(starts)

    def _start_episodes(self, starts: np.ndarray) -> None:
        """Per-episode draws for the sub-envs in ``starts`` (a subclass adds its own, e.g. a random lag)."""
        k = np.count_nonzero(starts)
        if k:
            fires = self._episode_fires.copy()  # a new array: the last one may be a step's ``fired`` still in use
            fires[starts] = self.rng.random(k) < self.p
            self._episode_fires, self._any_episode_fires = fires, bool(np.count_nonzero(fires))

    def _fires(self) -> tuple[np.ndarray, int] | None:
        """The sub-envs where the friction fires on this step (never one in a reset step) and how many, or None.

        The mask is read-only: it may be the wrapper's own array.
        """
        if self.per == "episode":
            if not self._any_episode_fires:
                return None
            fired = self._episode_fires
        else:
            p = self.p
            if p <= 0.0:
                return None
            fired = self._all_true if p >= 1.0 else self.rng.random(self.num_envs) < p
        if not self._all_live:
            fired = fired & ~self._resetting
        k = np.count_nonzero(fired)
        return (fired, k) if k else None

    # -- the replace-and-record step ------------------------------------------------------------
    def _replace(self, actions: Any, fired: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, Any, Any] | None:
        """For the ``k`` sub-envs ``fired``: ``(fired, executed_rows, reported_log_probs, actor_lags or None)``.

        Rows follow the sub-env order of ``fired``; None lets every action run. The rows may be
        views of the wrapper's own arrays: the protocol copies them into ``info``.
        """
        raise NotImplementedError

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminated, truncated, record = self._step_record(actions)
        return obs, rewards, terminated, truncated, record.materialise()

    def _inner_step(self, actions: Any) -> tuple[Any, Any, Any, Any, VectorStepRecord]:
        """The inner step, with its record: handed on by an inner friction layer, or started from the inner info.

        Adjacent friction layers pass one :class:`~dg_envs.wrappers.protocol.VectorStepRecord`
        outwards and only the outermost writes the info arrays (``step``); any other inner env
        gives a finished ``info`` the record builds on.
        """
        if isinstance(self.env, VectorFriction):
            return self.env._step_record(actions)
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        return obs, rewards, terminated, truncated, VectorStepRecord(info, self.num_envs, np.logical_or(terminated, truncated))

    def _step_record(self, actions: Any) -> tuple[Any, Any, Any, Any, VectorStepRecord]:
        """``step`` with the protocol entries still in the record (the replace-and-record step of an action friction)."""
        firing = self._fires()
        replacement = None if firing is None else self._replace(actions, *firing)
        if replacement is None:
            result = self._inner_step(actions)
        else:
            fired, executed, log_probs, actor_lags = replacement
            to_env = executed
            if self._is_box:  # reported as sampled, executed clipped into the Box
                to_env = np.clip(executed, self._space.low, self._space.high).astype(self._space.dtype)
            if len(executed) < self.num_envs:  # the other sub-envs run the learner's actions, untouched
                rows, to_env = to_env, np.array(actions, copy=True)
                to_env[fired] = rows
            elif to_env is executed:
                to_env = np.array(executed, copy=True)  # the rows may be the wrapper's own array
            result = self._inner_step(to_env)
            result[4].replace(fired, executed, log_probs, self._names, actor_lags)
        self._obs = result[0]
        self._end_step(result[4])
        return result
