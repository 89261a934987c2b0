"""The executed-action protocol: how a friction tells the learner what really ran.

On a step where a wrapper replaced the learner's action:

* ``info["executed_action"]`` is the action actually applied to the environment;
* ``info["behavior_log_prob"]`` is the log-probability the actor *reports* for it
  (a buggy actor lies and reports certainty, 0.0).

Absent keys mean the learner's own action ran. The innermost replacement wins: it is the
one the environment saw, so an outer wrapper never overwrites what an inner one reported.
``info["frictions"]`` lists the names of the frictions that fired on this step, and a
corrupted reward keeps the clean one in ``info["true_reward"]``.

>>> info = {}
>>> record_replacement(info, executed_action=3, behavior_log_prob=0.0, friction="bug")
>>> info
{'executed_action': 3, 'behavior_log_prob': 0.0, 'frictions': ['bug']}
>>> record_replacement(info, executed_action=1, behavior_log_prob=-0.7, friction="stale")
>>> info["executed_action"], info["frictions"]
(3, ['bug', 'stale'])
"""

from __future__ import annotations

from typing import Any

EXECUTED_ACTION = "executed_action"
BEHAVIOR_LOG_PROB = "behavior_log_prob"
FRICTIONS = "frictions"
TRUE_REWARD = "true_reward"


def record_friction(info: dict[str, Any], friction: str) -> None:
    """Append ``friction`` to ``info["frictions"]`` (created on first use)."""
    info.setdefault(FRICTIONS, []).append(friction)


def record_replacement(info: dict[str, Any], executed_action: Any, behavior_log_prob: float, friction: str) -> None:
    """Record that ``friction`` replaced the learner's action, unless an inner wrapper already did.

    Call it on the ``info`` returned by the inner env: if an inner wrapper replaced the action,
    that replacement is what the environment executed, and it is kept.
    """
    if EXECUTED_ACTION not in info:
        info[EXECUTED_ACTION] = executed_action
        info[BEHAVIOR_LOG_PROB] = float(behavior_log_prob)
    record_friction(info, friction)

#: How many learner updates old the snapshot a policy-driven actor used is (set by
#: :class:`~dg_envs.wrappers.StaleActor` / :class:`~dg_envs.wrappers.MismatchedActor`
#: whenever they act).
ACTOR_LAG = "actor_lag"

# The names friction wrappers write into ``info["frictions"]``.
STALE = "stale"
MISMATCH = "mismatch"
BUG = "bug"
REWARD_CORRUPTION = "reward_corruption"
DISCOVERY = "discovery"
