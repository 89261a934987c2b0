"""A rare discovery: with probability ``p`` the executed action is the correct one.

:class:`DiscoverySpec` holds the parameters (checked once); :class:`RareDiscovery` runs it
around one env and :class:`VectorRareDiscovery` — published as
``dg_envs.wrappers.vector.RareDiscovery`` — around a whole Gymnasium ``VectorEnv``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector import SyncVectorEnv, VectorEnv, VectorWrapper

from dg_envs.wrappers._base import EnvFriction, FrictionSpec, VectorFriction
from dg_envs.wrappers._spaces import ActionCheck, as_action, as_actions, check_reported_log_prob, take_rows
from dg_envs.wrappers.protocol import DISCOVERY

__all__ = ["DiscoverySpec", "RareDiscovery", "VectorRareDiscovery"]

_NO_OPTIMAL_ACTION = (
    "oracle: this env has no optimal_action(); pass oracle=callable(obs) -> action "
    "(accepted: None for envs with optimal_action(), or a callable)"
)


@dataclass(frozen=True)
class DiscoverySpec(FrictionSpec):
    """A rare discovery: with probability ``p`` the correct action runs.

    Args:
        p: probability of a discovery, per step or per episode.
        oracle: ``oracle(obs) -> action``; default: the env's ``optimal_action()`` (for a vector
            env: called with the batch of observations of the sub-envs where it fired, it
            returns one action per row, as an SB3 ``model.predict`` or
            :class:`~dg_envs.wrappers.PolicyOracle` does).
        reported_log_prob: the log-probability reported for the discovered action (finite;
            <= 0 for discrete actions). Default 0.0.
        per: ``"step"`` or ``"episode"``.

    >>> DiscoverySpec(p=0.1, oracle=3)
    Traceback (most recent call last):
    ...
    ValueError: oracle must be None or a callable oracle(obs) -> action, got 3
    """

    name = DISCOVERY
    stream = 0x0D6E_0005

    p: float
    oracle: Callable[[Any], Any] | None = None
    reported_log_prob: float = 0.0
    per: str = "step"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.oracle is not None and not callable(self.oracle):
            raise ValueError(f"oracle must be None or a callable oracle(obs) -> action, got {self.oracle!r}")


class RareDiscovery(EnvFriction):
    """With probability ``p`` the executed action is the correct one: a rare, lucky success.

    The correct action is ``env.get_wrapper_attr("optimal_action")()`` (found through the
    wrapper stack; every ``dg_envs`` environment has it) or ``oracle(obs)`` when given (e.g. an
    SB3 expert: :class:`~dg_envs.wrappers.PolicyOracle`).

    Reported log-probability: ``reported_log_prob``, default 0.0 — the discovering actor is a
    deterministic oracle, so, having fired, it chose this action with probability 1 (the
    reference code likewise injects the correct answer without a behaviour probability). The
    point of the friction is that the action is *surprising to the learner*; DG measures that
    with the learner's own log-probability, so the report matters only to importance weighting.

    Put it innermost of the action frictions (:data:`~dg_envs.wrappers.CANONICAL_ORDER`): the
    innermost replacement wins, which gives the paper's precedence correct > random > bug >
    sample. An outer :class:`~dg_envs.wrappers.RewardCorruption` corrupts a discovery step's
    reward like any other (the reference's coin is independent of the injections), unless
    given ``spare_discoveries=True``. Arguments: :class:`DiscoverySpec`. A vector version exists:
    :class:`dg_envs.wrappers.vector.RareDiscovery`.

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

    spec_class = DiscoverySpec

    def _bind(self) -> None:
        if self.oracle is None and not self.env.has_wrapper_attr("optimal_action"):
            raise ValueError(_NO_OPTIMAL_ACTION)
        self._check_oracle_action = ActionCheck(self._space, "oracle")
        self.reported_log_prob = check_reported_log_prob(self.reported_log_prob, self._space)

    def _replace(self, action: Any) -> tuple[Any, float, None] | None:
        if not self._fires():
            return None
        if self.oracle is None:  # the env's own optimal_action(): trusted, not checked
            correct = as_action(self._space, self.env.get_wrapper_attr("optimal_action")())
        else:
            correct = self._check_oracle_action(self.oracle(self._obs))
        return correct, self.reported_log_prob, None


def _optimal_actions(env: VectorEnv) -> Callable[[np.ndarray], Any] | None:
    """``optimal(idx)``: the correct actions of sub-envs ``idx``, or None if the vector env does not know them.

    Found on the vector stack (a natively batched env's ``optimal_action()`` answers for every
    sub-env at once), else on each sub-env of a ``SyncVectorEnv`` (asked only where it fired).
    """
    layer = env
    while True:
        method = getattr(layer, "optimal_action", None)
        if method is not None:
            return lambda idx: np.asarray(method())[idx]
        if not isinstance(layer, VectorWrapper):
            break
        layer = layer.env
    if isinstance(layer, SyncVectorEnv) and layer.envs and layer.envs[0].has_wrapper_attr("optimal_action"):
        envs = layer.envs
        return lambda idx: [envs[i].get_wrapper_attr("optimal_action")() for i in idx.tolist()]
    return None


class VectorRareDiscovery(VectorFriction):
    """:class:`~dg_envs.wrappers.RareDiscovery` around a Gymnasium ``VectorEnv``, batched.

    The correct actions come from the vector env's ``optimal_action()`` (our native vector envs
    answer for every sub-env at once; a ``SyncVectorEnv`` is asked sub-env by sub-env where the
    friction fired) or from ``oracle(obs_batch)``, called once per step with the observations of
    the sub-envs where it fired. An ``AsyncVectorEnv`` needs an oracle.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> import dg_envs
        >>> from dg_envs.wrappers import vector
        >>> envs = gym.make_vec("dg_envs/TokenReversal-v0", num_envs=2, vectorization_mode="vector_entry_point", length=2)
        >>> envs = vector.RareDiscovery(envs, p=1.0, per="episode")
        >>> _ = envs.reset(seed=0)
        >>> rewards = [envs.step(np.zeros(2, dtype=np.int64))[1] for _ in range(2)]
        >>> rewards[-1]  # every answer correct: the discoveries ran
        array([1., 1.])
    """

    spec_class = DiscoverySpec

    def _bind(self) -> None:
        self._optimal = None if self.oracle is not None else _optimal_actions(self.env)
        if self.oracle is None and self._optimal is None:
            raise ValueError(_NO_OPTIMAL_ACTION)
        self._check_oracle_action = ActionCheck(self._space, "oracle")
        self.reported_log_prob = check_reported_log_prob(self.reported_log_prob, self._space)
        self._reported_rows = np.full(self.num_envs, self.reported_log_prob)

    def _replace(self, actions: Any, fired: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
        idx = fired.nonzero()[0]
        if self._optimal is not None:  # the env's own optimal actions: trusted, not checked
            correct = as_actions(self._space, self._optimal(idx), k)
        else:
            correct = self._check_oracle_action.batch(self.oracle(take_rows(self._obs, idx)), k)
        return fired, correct, self._reported_rows[:k], None
