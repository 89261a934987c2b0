"""The friction wrappers around a Gymnasium ``VectorEnv``: the same names as the per-env ones, batched.

As Gymnasium has ``gymnasium.wrappers.RecordEpisodeStatistics`` and
``gymnasium.wrappers.vector.RecordEpisodeStatistics``, each friction here carries its per-env
name: ``dg_envs.wrappers.vector.StaleActor`` is :class:`dg_envs.wrappers.StaleActor` around a
whole ``VectorEnv`` (our native ones from ``gym.make_vec(..., vectorization_mode=
"vector_entry_point")``, or a ``SyncVectorEnv`` / ``AsyncVectorEnv`` of any env). Each is
defined in its friction's module beside the per-env wrapper, from the same specification
(``VectorStaleActor`` in :mod:`dg_envs.wrappers.stale`, ...), and published here under the
per-env name. :func:`~dg_envs.wrappers.apply_frictions` stacks them when given a ``VectorEnv``.

What is batched: one decision per sub-env drawn for all at once, one forward pass of the
snapshot per step for the policy-driven actors (one snapshot stored per push), and the
protocol keys in Gymnasium's vector info convention: ``info["executed_action"]``,
``info["behavior_log_prob"]``, ``info["actor_lag"]``, ``info["true_reward"]`` as arrays over
sub-envs, each with its mask ``info["_" + key]``, and ``info["frictions"]`` an object array of
tuples of names. The innermost replacement wins sub-env by sub-env. A sub-env's reset step
(``NEXT_STEP`` autoreset) never fires; per-episode draws are redrawn when its new episode starts.

Example:
    >>> import gymnasium as gym
    >>> import numpy as np
    >>> import dg_envs
    >>> from dg_envs.wrappers import apply_frictions, vector
    >>> envs = gym.make_vec("dg_envs/TokenReversal-v0", num_envs=3, vectorization_mode="vector_entry_point", length=2)
    >>> envs = apply_frictions(envs, bug={"p": 1.0, "per": "episode"}, reward_corruption={"p": 1.0, "mode": "sign_flip"})
    >>> isinstance(envs, vector.RewardCorruption) and isinstance(envs.env, vector.BuggyActor)
    True
    >>> _ = envs.reset(seed=0)
    >>> info = envs.step(np.ones(3, dtype=np.int64))[4]
    >>> info["executed_action"], info["frictions"].tolist()
    (array([0, 0, 0]), [('bug', 'reward_corruption'), ('bug', 'reward_corruption'), ('bug', 'reward_corruption')])
"""

from __future__ import annotations

from dg_envs.wrappers.stack import CANONICAL_ORDER, REGISTRY, apply_frictions

__all__ = [
    "StaleActor",
    "MismatchedActor",
    "BuggyActor",
    "RandomAnswer",
    "RewardCorruption",
    "RareDiscovery",
    "apply_frictions",
    "CANONICAL_ORDER",
]


def _publish(friction: str) -> type:
    """The vector wrapper of ``friction``, renamed to its per-env name and homed in this module.

    So that its repr, ``type(wrapper).__name__`` in messages, pickling and the docs all say
    ``dg_envs.wrappers.vector.StaleActor``, as Gymnasium's vector wrappers do.
    """
    cls = REGISTRY[friction].vector_wrapper
    cls.__name__ = cls.__qualname__ = REGISTRY[friction].env_wrapper.__name__
    cls.__module__ = __name__
    return cls


StaleActor = _publish("stale")
MismatchedActor = _publish("mismatch")
BuggyActor = _publish("bug")
RandomAnswer = _publish("random_answer")
RewardCorruption = _publish("reward_corruption")
RareDiscovery = _publish("discovery")
