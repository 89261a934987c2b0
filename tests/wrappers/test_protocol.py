"""The executed-action protocol, checked on its functions and on stacks of real friction wrappers (both executions)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
from _wrappers_test_utils import SPACES, ConstantActor, ToyEnv, executions  # noqa: E402

from dg_envs.wrappers import push_policy_snapshot  # noqa: E402
from dg_envs.wrappers.protocol import (  # noqa: E402
    ACTOR_LAG,
    BEHAVIOR_LOG_PROB,
    EXECUTED_ACTION,
    FRICTIONS,
    TRUE_REWARD,
    fired_mask,
    innermost_wins,
    record_friction,
    record_replacement,
    record_reward_change,
)

ACTION_FRICTIONS = {"stale", "mismatch", "bug", "random_answer", "discovery"}


def test_record_replacement_keeps_the_inner_one():
    info: dict = {}
    record_friction(info, "reward_corruption")
    assert record_replacement(info, 2, -0.5, "discovery")
    assert not record_replacement(info, 0, 0.0, "bug", actor_lag=3)
    assert info == {FRICTIONS: ["reward_corruption", "discovery", "bug"], EXECUTED_ACTION: 2, BEHAVIOR_LOG_PROB: -0.5}


def test_record_friction_never_mutates_the_inner_list():
    inner = ["bug"]
    info = {FRICTIONS: inner}
    record_friction(info, ("stale", "mismatch"))
    assert inner == ["bug"] and info[FRICTIONS] == ["bug", "stale", "mismatch"]


def test_vector_record_replacement_follows_the_same_rule_with_masks():
    """Sub-env 0: an inner replacement ran (kept); 1: ours ran; 2: nothing fired; 3: ours ran over an inner friction name."""
    inner_frictions = np.array([["bug"], None, None, ["reward_corruption"]], dtype=object)
    info = {
        EXECUTED_ACTION: np.array([4, 0, 0, 0]), "_" + EXECUTED_ACTION: np.array([True, False, False, False]),
        BEHAVIOR_LOG_PROB: np.array([-0.1, 0, 0, 0]), "_" + BEHAVIOR_LOG_PROB: np.array([True, False, False, False]),
        FRICTIONS: inner_frictions, "_" + FRICTIONS: np.array([True, False, False, True]),
    }
    fired = np.array([True, True, False, True])
    won = record_replacement(info, np.array([7, 8, 9]), np.array([-1.0, -2.0, -3.0]), "stale", fired=fired, actor_lag=np.array([1, 2, 3]))
    assert won.tolist() == [False, True, False, True]
    assert info[EXECUTED_ACTION][info["_" + EXECUTED_ACTION]].tolist() == [4, 8, 9]
    assert info[BEHAVIOR_LOG_PROB][info["_" + BEHAVIOR_LOG_PROB]].tolist() == [-0.1, -2.0, -3.0]
    assert info["_" + ACTOR_LAG].tolist() == won.tolist() and info[ACTOR_LAG][won].tolist() == [2, 3]
    assert info["_" + FRICTIONS].tolist() == [True, True, False, True]
    assert [tuple(f) for f in info[FRICTIONS][info["_" + FRICTIONS]]] == [("bug", "stale"), ("stale",), ("reward_corruption", "stale")]
    assert inner_frictions[0] == ["bug"]  # the inner arrays are not written through
    assert fired_mask(info, "stale", 4).tolist() == [True, True, False, True] and fired_mask(info, "bug", 4).tolist()[0]


def test_vector_rule_sees_a_same_step_final_info():
    """A SyncVectorEnv in SAME_STEP puts a done sub-env's step info (an inner per-env replacement) in final_info."""
    info = {
        "final_info": {EXECUTED_ACTION: np.array([0, 3]), "_" + EXECUTED_ACTION: np.array([False, True]),
                       FRICTIONS: np.array([None, ["discovery"]], dtype=object), "_" + FRICTIONS: np.array([False, True])},
        "_final_info": np.array([False, True]),
    }
    assert fired_mask(info, "discovery", 2).tolist() == [False, True]
    assert record_replacement(info, np.array([1, 1]), np.zeros(2), "stale", fired=np.array([True, True])).tolist() == [True, False]
    assert info["_" + EXECUTED_ACTION].tolist() == [True, False]  # the top level: ours, where ours ran


def test_innermost_wins_is_one_rule_for_both_forms():
    assert innermost_wins(False, True) and not innermost_wins(True, True) and not innermost_wins(False, False)
    fired = np.array([True, True, False])
    assert innermost_wins(None, fired) is fired
    assert innermost_wins(np.array([True, False, True]), fired).tolist() == [False, True, False]


def test_true_reward_keeps_the_innermost_clean_reward():
    info: dict = {}
    record_reward_change(info, 1.0)
    record_reward_change(info, 0.3)
    assert info[TRUE_REWARD] == 1.0
    vec = {TRUE_REWARD: np.array([1.0, 0.0]), "_" + TRUE_REWARD: np.array([True, False])}
    record_reward_change(vec, np.array([0.5, 0.7]), changed=np.array([True, True]))
    assert vec[TRUE_REWARD].tolist() == [1.0, 0.7] and vec["_" + TRUE_REWARD].tolist() == [True, True]


def _stack(X, space, p, per):
    env = X.w.apply_frictions(
        X.make(ToyEnv, space),
        stale={"lag": 1, "p": p, "per": per},
        bug={"p": p, "bug": "random", "per": per},
        random_answer={"p": p / 2, "per": per},
        reward_corruption={"p": p, "mode": "coin", "per": per},
        discovery={"p": p / 2, "per": per},
    )
    assert push_policy_snapshot(env, ConstantActor(SPACES[space].sample(), log_prob=-3.0)) == X.num_envs
    return env


@executions()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    space=st.sampled_from(sorted(SPACES)),
    p=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
    per=st.sampled_from(["step", "episode"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_protocol_on_a_full_stack(X, space, p, per, seed):
    """Keys present exactly when an action was replaced; the env ran the innermost replacement;
    true_reward present exactly when the reward changed; per-episode frictions held all episode."""
    env = _stack(X, space, p, per)
    clean = X.rollouts(X.make(ToyEnv, space), seed, 80)
    for sub_steps, clean_steps in zip(X.rollouts(env, seed, 80), clean, strict=True):
        by_episode: dict[int, set] = {}
        if p == 0.0:
            assert len(sub_steps) == len(clean_steps)
        for step, clean_step in zip(sub_steps, clean_steps):
            info = step["info"]
            names = info.get(FRICTIONS, [])
            assert len(names) == len(set(names))
            replaced = bool(ACTION_FRICTIONS & set(names))
            assert (EXECUTED_ACTION in info) == replaced == (BEHAVIOR_LOG_PROB in info)
            if replaced:
                executed = info[EXECUTED_ACTION]
                np.testing.assert_array_equal(step["received"], executed)  # the env saw it (Box actor actions are in bounds here)
                innermost = [n for n in ("discovery", "random_answer", "bug", "stale") if n in names][0]
                expected_log_prob = {"discovery": 0.0, "random_answer": 0.0, "bug": 0.0, "stale": -3.0}[innermost]
                assert info[BEHAVIOR_LOG_PROB] == expected_log_prob
                assert (ACTOR_LAG in info) == (innermost == "stale")
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


@executions()
def test_true_reward_matches_an_unwrapped_twin(X):
    """With only reward corruption the action stream is the same, so the twin's reward is the clean one."""
    clean = X.steps(X.make(ToyEnv, "discrete"), 9, 500)
    dirty = X.steps(X.w.apply_frictions(X.make(ToyEnv, "discrete"), reward_corruption={"p": 0.5, "mode": "gaussian", "noise_std": 0.1}), 9, 500)
    changed = 0
    for c, d in zip(clean, dirty, strict=True):
        assert d["info"].get(TRUE_REWARD, d["reward"]) == c["reward"]
        assert (TRUE_REWARD in d["info"]) == (c["reward"] != d["reward"])
        changed += TRUE_REWARD in d["info"]
    assert 0.36 * len(clean) < changed < 0.64 * len(clean)


@executions()
def test_innermost_replacement_wins_and_outer_frictions_are_still_listed(X):
    env = X.w.BuggyActor(X.w.RareDiscovery(X.make(ToyEnv, "discrete"), p=1.0, reported_log_prob=-0.1), p=1.0, landmine=4)
    for step in X.steps(env, 0, 50):
        info = step["info"]
        assert info[FRICTIONS] == ["discovery", "bug"]
        assert step["reward"] == 1.0 and info[BEHAVIOR_LOG_PROB] == -0.1
        assert info[EXECUTED_ACTION] == step["received"]  # the optimal action (1 or 0 here), never the landmine 4
        assert step["received"] in (0, 1)


@executions()
@pytest.mark.parametrize("per", ["step", "episode"])
def test_stale_without_snapshot_is_silent(X, per):
    env = X.w.StaleActor(X.make(ToyEnv, "box"), lag=3, per=per)
    for step in X.steps(env, 0, 40):
        assert step["info"] == {"t": step["info"]["t"]}
        np.testing.assert_array_equal(step["received"], step["action"])
