"""The executed-action protocol, checked on stacks of real friction wrappers."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
from _wrappers_test_utils import SPACES, ConstantActor, ToyEnv, rollout  # noqa: E402

from dg_envs.wrappers import BuggyActor, RareDiscovery, StaleActor, apply_frictions  # noqa: E402
from dg_envs.wrappers.protocol import (  # noqa: E402
    BEHAVIOR_LOG_PROB,
    EXECUTED_ACTION,
    FRICTIONS,
    TRUE_REWARD,
    record_friction,
    record_replacement,
)

ACTION_FRICTIONS = {"stale", "mismatch", "bug", "discovery"}


def test_record_replacement_keeps_the_inner_one():
    info: dict = {}
    record_friction(info, "reward_corruption")
    record_replacement(info, 2, -0.5, "discovery")
    record_replacement(info, 0, 0.0, "bug")
    assert info == {FRICTIONS: ["reward_corruption", "discovery", "bug"], EXECUTED_ACTION: 2, BEHAVIOR_LOG_PROB: -0.5}


def _stack(space, p, per):
    env = apply_frictions(
        ToyEnv(space),
        stale={"lag": 1, "p": p, "per": per},
        bug={"p": p, "bug": "random", "per": per},
        reward_corruption={"p": p, "mode": "coin", "per": per},
        discovery={"p": p / 2, "per": per},
    )
    env.env.push_policy_snapshot(ConstantActor(SPACES[space].sample(), log_prob=-3.0))
    return env


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    space=st.sampled_from(sorted(SPACES)),
    p=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
    per=st.sampled_from(["step", "episode"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_protocol_on_a_full_stack(space, p, per, seed):
    """Keys present exactly when an action was replaced; the env ran the innermost replacement;
    true_reward present exactly when the reward changed; per-episode frictions held all episode."""
    env = _stack(space, p, per)
    clean = rollout(ToyEnv(space), seed, 80)
    steps = rollout(env, seed, 80)
    by_episode: dict[int, set] = {}
    for step, clean_step in zip(steps, clean, strict=True):
        info = step["info"]
        names = info.get(FRICTIONS, [])
        assert len(names) == len(set(names))
        replaced = bool(ACTION_FRICTIONS & set(names))
        assert (EXECUTED_ACTION in info) == replaced == (BEHAVIOR_LOG_PROB in info)
        if replaced:
            executed = info[EXECUTED_ACTION]
            np.testing.assert_array_equal(step["received"], executed)  # the env saw it (Box actor actions are in bounds here)
            innermost = [n for n in ("discovery", "bug", "stale") if n in names][0]
            expected_log_prob = {"discovery": 0.0, "bug": 0.0, "stale": -3.0}[innermost]
            assert info[BEHAVIOR_LOG_PROB] == expected_log_prob
        else:
            np.testing.assert_array_equal(step["received"], step["action"])
        if TRUE_REWARD in info:
            assert "reward_corruption" in names and info[TRUE_REWARD] != step["reward"]
        if per == "episode":
            by_episode.setdefault(step["episode"], set()).add(tuple(sorted(names)))
        if p == 0.0:
            assert names == [] and step["reward"] == clean_step["reward"]
    if per == "episode":
        assert all(len(v) == 1 for v in by_episode.values())


def test_true_reward_matches_an_unwrapped_twin():
    """With only reward corruption the action stream is the same, so the twin's reward is the clean one."""
    clean = rollout(ToyEnv("discrete"), 9, 500)
    dirty = rollout(apply_frictions(ToyEnv("discrete"), reward_corruption={"p": 0.5, "mode": "gaussian", "noise_std": 0.1}), 9, 500)
    changed = 0
    for c, d in zip(clean, dirty, strict=True):
        assert d["info"].get(TRUE_REWARD, d["reward"]) == c["reward"]
        assert (TRUE_REWARD in d["info"]) == (c["reward"] != d["reward"])
        changed += TRUE_REWARD in d["info"]
    assert 180 < changed < 320


def test_innermost_replacement_wins_and_outer_frictions_are_still_listed():
    env = BuggyActor(RareDiscovery(ToyEnv("discrete"), p=1.0, reported_log_prob=-0.1), p=1.0, landmine=4)
    for step in rollout(env, 0, 50):
        info = step["info"]
        assert info[FRICTIONS] == ["discovery", "bug"]
        assert step["reward"] == 1.0 and info[BEHAVIOR_LOG_PROB] == -0.1
        assert info[EXECUTED_ACTION] == step["received"]  # the optimal action (1 or 0 here), never the landmine 4
        assert step["received"] in (0, 1)


@pytest.mark.parametrize("per", ["step", "episode"])
def test_stale_without_snapshot_is_silent(per):
    env = StaleActor(ToyEnv("box"), lag=3, per=per)
    for step in rollout(env, 0, 40):
        assert step["info"] == {"t": step["info"]["t"]}
        np.testing.assert_array_equal(step["received"], step["action"])
