"""Friction wrappers: imperfect actors and rewards around any Gymnasium env, with an honest record of what ran."""

from dg_envs.wrappers.actors import Actor, PolicySnapshotStore, SB3PolicyActor, SnapshotCallback, push_policy_snapshot

__all__ = ["Actor", "PolicySnapshotStore", "SB3PolicyActor", "SnapshotCallback", "push_policy_snapshot"]
