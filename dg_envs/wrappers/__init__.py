"""Friction wrappers: imperfect actors and rewards around any Gymnasium env, with an honest record of what ran.

One module per friction, each holding its specification (a frozen dataclass: parameters,
defaults, checks, name) and both executions — the per-env ``gymnasium.Wrapper`` exported here,
and the batched ``gymnasium.vector.VectorWrapper`` exported under the same name by
:mod:`dg_envs.wrappers.vector`:

* :mod:`~dg_envs.wrappers.stale` — :class:`StaleActor`, the policy ``lag`` updates old acts;
* :mod:`~dg_envs.wrappers.mismatch` — :class:`MismatchedActor`, noise on the policy's logits;
* :mod:`~dg_envs.wrappers.bug` — :class:`BuggyActor`, a landmine (or random / user) action reported as certain;
* :mod:`~dg_envs.wrappers.random_answer` — :class:`RandomAnswer`, a uniformly random action reported as certain;
* :mod:`~dg_envs.wrappers.discovery` — :class:`RareDiscovery`, the correct action, rarely;
* :mod:`~dg_envs.wrappers.reward_corruption` — :class:`RewardCorruption`, a coin / noisy / flipped reward.

:mod:`~dg_envs.wrappers.stack` holds :data:`CANONICAL_ORDER` and :func:`apply_frictions`;
:mod:`~dg_envs.wrappers.protocol` the ``info`` keys, friction names and the innermost-wins
rule; :mod:`~dg_envs.wrappers.actors` the policy snapshots the policy-driven actors act with.
The private modules hold the shared machinery: ``_base`` (specs, firing, seeding, the two
execution bases), ``_spaces`` (action-space maths), ``_policy`` (the policy-actor core).
"""

from dg_envs.wrappers import vector  # the batched wrappers, published under the per-env names
from dg_envs.wrappers._base import PER_VALUES
from dg_envs.wrappers.actors import Actor, PolicyOracle, PolicySnapshotStore, SB3PolicyActor, SnapshotCallback, push_policy_snapshot
from dg_envs.wrappers.bug import BuggyActor
from dg_envs.wrappers.discovery import RareDiscovery
from dg_envs.wrappers.mismatch import MismatchedActor
from dg_envs.wrappers.random_answer import RandomAnswer
from dg_envs.wrappers.reward_corruption import RewardCorruption
from dg_envs.wrappers.stack import CANONICAL_ORDER, apply_frictions
from dg_envs.wrappers.stale import StaleActor

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
    "RandomAnswer",
    "RewardCorruption",
    "RareDiscovery",
    "apply_frictions",
    "CANONICAL_ORDER",
    "PER_VALUES",
]
