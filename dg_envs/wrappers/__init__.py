"""Friction wrappers: imperfect actors and rewards around any Gymnasium env, with an honest record of what ran.

See :mod:`dg_envs.wrappers.frictions` (the wrappers and :func:`apply_frictions`),
:mod:`dg_envs.wrappers.actors` (policy snapshots for the policy-driven actors) and
:mod:`dg_envs.wrappers.protocol` (the ``info`` keys every friction writes) and
:mod:`dg_envs.wrappers.vector` (batched stale / mismatched actors around a whole SB3 VecEnv).
"""

from dg_envs.wrappers.actors import Actor, PolicyOracle, PolicySnapshotStore, SB3PolicyActor, SnapshotCallback, push_policy_snapshot
from dg_envs.wrappers.frictions import (
    CANONICAL_ORDER,
    PER_VALUES,
    BuggyActor,
    MismatchedActor,
    RareDiscovery,
    RewardCorruption,
    StaleActor,
    apply_frictions,
)
from dg_envs.wrappers.vector import VecMismatchedActor, VecStaleActor

__all__ = [
    "Actor",
    "PolicySnapshotStore",
    "SB3PolicyActor",
    "SnapshotCallback",
    "push_policy_snapshot",
    "PolicyOracle",
    "StaleActor",
    "MismatchedActor",
    "BuggyActor",
    "RewardCorruption",
    "RareDiscovery",
    "apply_frictions",
    "CANONICAL_ORDER",
    "PER_VALUES",
    "VecStaleActor",
    "VecMismatchedActor",
]
