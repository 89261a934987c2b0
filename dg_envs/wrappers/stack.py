"""Stacking frictions: the canonical order, the one registry of frictions, and :func:`apply_frictions`."""

from __future__ import annotations

import numbers
from dataclasses import fields
from typing import Any, NamedTuple

from gymnasium.vector import VectorEnv

from dg_envs.wrappers._base import EnvFriction, FrictionSpec, VectorFriction
from dg_envs.wrappers.bug import BugSpec, BuggyActor, VectorBuggyActor
from dg_envs.wrappers.discovery import DiscoverySpec, RareDiscovery, VectorRareDiscovery
from dg_envs.wrappers.mismatch import MismatchedActor, MismatchSpec, VectorMismatchedActor
from dg_envs.wrappers.protocol import BUG, DISCOVERY, MISMATCH, RANDOM_ANSWER, REWARD_CORRUPTION, STALE
from dg_envs.wrappers.random_answer import RandomAnswer, RandomAnswerSpec, VectorRandomAnswer
from dg_envs.wrappers.reward_corruption import RewardCorruption, RewardCorruptionSpec, VectorRewardCorruption
from dg_envs.wrappers.stale import StaleActor, StaleSpec, VectorStaleActor

__all__ = ["CANONICAL_ORDER", "REGISTRY", "Friction", "apply_frictions"]

#: The order :func:`apply_frictions` stacks the wrappers in, innermost first. The innermost
#: action replacement is the one the environment executes, so a discovery beats a random
#: answer, which beats a bug, which beats the (stale / mismatched) actor — the reference's
#: precedence of the actor's *injections*, correct > random > bug > sample
#: (``egg/actors/dreamer_bps.py``). Reward corruption is outermost and independent of them:
#: its coin hits whatever ran, a discovery or a bug step included, as the reference's
#: ``bernoulli_noise_wrapper.py`` does (``spare_discoveries=True`` exempts discoveries).
CANONICAL_ORDER = (DISCOVERY, RANDOM_ANSWER, BUG, MISMATCH, STALE, REWARD_CORRUPTION)


class Friction(NamedTuple):
    """One friction: its specification and its two executions."""

    spec: type[FrictionSpec]
    env_wrapper: type[EnvFriction]
    vector_wrapper: type[VectorFriction]

    @property
    def first_argument(self) -> str:
        """The argument a bare number stands for in :func:`apply_frictions` (``lag``, ``noise_std``, ``p``)."""
        return fields(self.spec)[0].name


#: Friction name -> its specification and wrappers: the one table of them, used by
#: :func:`apply_frictions` and :mod:`dg_envs.wrappers.vector`.
REGISTRY: dict[str, Friction] = {
    DISCOVERY: Friction(DiscoverySpec, RareDiscovery, VectorRareDiscovery),
    RANDOM_ANSWER: Friction(RandomAnswerSpec, RandomAnswer, VectorRandomAnswer),
    BUG: Friction(BugSpec, BuggyActor, VectorBuggyActor),
    MISMATCH: Friction(MismatchSpec, MismatchedActor, VectorMismatchedActor),
    STALE: Friction(StaleSpec, StaleActor, VectorStaleActor),
    REWARD_CORRUPTION: Friction(RewardCorruptionSpec, RewardCorruption, VectorRewardCorruption),
}


def _kwargs(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    first = REGISTRY[name].first_argument
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return {first: value}
    raise ValueError(f"{name} must be None, a number ({first}) or a dict of keyword arguments, got {value!r}")


def apply_frictions(
    env: Any,
    stale: Any = None,
    mismatch: Any = None,
    bug: Any = None,
    random_answer: Any = None,
    reward_corruption: Any = None,
    discovery: Any = None,
) -> Any:
    """Wrap ``env`` — one Gymnasium env or a ``VectorEnv`` — in the asked-for frictions, in :data:`CANONICAL_ORDER`.

    Each argument is ``None`` (off), a number — the lag for ``stale``, the noise std for
    ``mismatch``, the probability ``p`` for the others — or a dict of that friction's keyword
    arguments (its spec's fields). Every specification is built and checked before any wrapper
    is. Innermost first: discovery, random answer, bug, the policy actor, reward corruption:
    the innermost action replacement runs (the reference's injection precedence correct >
    random > bug > sample), and the reward coin, outermost, is independent of the injections
    (it hits a discovery's reward too unless ``spare_discoveries=True``). A
    single env gets the per-env wrappers, a ``VectorEnv`` their batched versions
    (:mod:`dg_envs.wrappers.vector`), from the same specifications. When both ``stale`` and
    ``mismatch`` are given they make one actor, a mismatched actor with the stale lag (noise on
    the stale policy, as in the reference code), because two stacked policy actors would leave
    only the inner one acting.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> from dg_envs.wrappers import apply_frictions
        >>> env = apply_frictions(gym.make("dg_envs/KArmedBandit-v0"), stale=3, bug=0.1,
        ...                       reward_corruption={"p": 0.1, "mode": "coin"}, discovery=0.01)
        >>> [type(layer).__name__ for layer in (env, env.env, env.env.env, env.env.env.env)]
        ['RewardCorruption', 'StaleActor', 'BuggyActor', 'RareDiscovery']
        >>> envs = apply_frictions(gym.make_vec("dg_envs/KArmedBandit-v0", num_envs=8, vectorization_mode="vector_entry_point"),
        ...                        stale=3, bug=0.1)
        >>> envs
        <StaleActor, <BuggyActor, KArmedBanditVectorEnv(dg_envs/KArmedBandit-v0, num_envs=8)>>
    """
    given = {
        name: _kwargs(name, value)
        for name, value in (
            (STALE, stale),
            (MISMATCH, mismatch),
            (BUG, bug),
            (RANDOM_ANSWER, random_answer),
            (REWARD_CORRUPTION, reward_corruption),
            (DISCOVERY, discovery),
        )
        if value is not None
    }
    if STALE in given and MISMATCH in given:
        stale_kwargs, mismatch_kwargs = given.pop(STALE), given[MISMATCH]
        for key in ("p", "per"):
            if key in stale_kwargs and key in mismatch_kwargs and stale_kwargs[key] != mismatch_kwargs[key]:
                raise ValueError(f"stale and mismatch: {key} differs ({stale_kwargs[key]!r} vs {mismatch_kwargs[key]!r}); they act as one actor")
        mismatch_kwargs.update({k: v for k, v in stale_kwargs.items() if k not in mismatch_kwargs})
    specs = {name: REGISTRY[name].spec(**kwargs) for name, kwargs in given.items()}
    vector = isinstance(env, VectorEnv)
    for name in CANONICAL_ORDER:
        if name in specs:
            friction = REGISTRY[name]
            env = (friction.vector_wrapper if vector else friction.env_wrapper).from_spec(env, specs[name])
    return env
