"""What only the vector wrappers have: autoreset modes, one forward per step, one snapshot per push,
masks, native and third-party vector envs, composition with Gymnasium's vector wrappers.

(The properties both executions share are tested once for both in test_frictions.py / test_protocol.py.)
"""

from __future__ import annotations

import functools
import os
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

sys.path.insert(0, os.path.dirname(__file__))
from _wrappers_test_utils import SPACES, ConstantActor, ToyEnv, sb3_policy, split_vector_info  # noqa: E402

import dg_envs  # noqa: E402,F401  (registers the ids)
from dg_envs.wrappers import SB3PolicyActor, StaleActor, apply_frictions, push_policy_snapshot, vector  # noqa: E402
from dg_envs.wrappers.protocol import ACTOR_LAG, BEHAVIOR_LOG_PROB, EXECUTED_ACTION, FRICTIONS, TRUE_REWARD  # noqa: E402

MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)


class CountingActor:
    """Returns ``action`` with log-prob 0 and counts its calls and the rows it was given."""

    def __init__(self, action):
        self.action, self.calls, self.rows = action, 0, []

    def __call__(self, obs, rng, noise_std=0.0):
        n = len(obs)
        self.calls += 1
        self.rows.append(n)
        return np.stack([np.asarray(self.action)] * n), np.zeros(n)


def token_reversal(num_envs=4, length=3, mode=AutoresetMode.NEXT_STEP, **kwargs):
    return gym.make_vec("dg_envs/TokenReversal-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        length=length, autoreset_mode=mode, **kwargs)


def toy_sync(space="discrete", n=4, mode=AutoresetMode.NEXT_STEP):
    return SyncVectorEnv([functools.partial(ToyEnv, space)] * n, autoreset_mode=mode)


# ---------------------------------------------------------------- episodes and autoreset


@pytest.mark.parametrize("wrap", [
    lambda e: vector.BuggyActor(e, p=1.0),
    lambda e: vector.RandomAnswer(e, p=1.0, per="episode"),
    lambda e: vector.RareDiscovery(e, p=1.0),
    lambda e: vector.RewardCorruption(e, p=1.0, mode="gaussian"),
], ids=["bug", "random_answer", "discovery", "reward"])
def test_next_step_reset_steps_never_fire(wrap):
    """Token reversal (length 3, NEXT_STEP): every 4th step is a reset step for all sub-envs; p=1 fires on all others."""
    envs = wrap(token_reversal())
    envs.reset(seed=0)
    for t in range(12):
        _, rewards, terminated, _, info = envs.step(np.ones(4, dtype=np.int64))
        if t % 4 == 3:  # the reset step: it ignores the action; nothing fires or is recorded
            assert not {EXECUTED_ACTION, FRICTIONS, TRUE_REWARD} & set(info) and np.all(rewards == 0.0)
        else:
            assert info["_" + FRICTIONS].all()


def test_next_step_reset_steps_never_call_the_actor_and_sub_envs_are_tracked_apart():
    """A Sync ToyEnv's sub-envs end at different steps: the actor is given exactly the rows not in a reset step."""
    envs = vector.StaleActor(toy_sync(n=6), lag=0)
    actor = CountingActor(3)
    push_policy_snapshot(envs, actor)
    envs.reset(seed=1)
    resetting = np.zeros(6, dtype=bool)
    for _ in range(200):
        _, _, terminated, truncated, info = envs.step(np.zeros(6, dtype=np.int64))
        live = ~resetting
        assert info.get("_" + EXECUTED_ACTION, np.zeros(6, bool)).tolist() == live.tolist()
        assert actor.rows[-1] == live.sum() if live.any() else True
        resetting = terminated | truncated
    assert actor.calls == sum(1 for r in actor.rows if r) and any(r < 6 for r in actor.rows)


@pytest.mark.parametrize("mode", MODES)
def test_per_episode_draws_are_held_and_redrawn_at_each_new_episode(mode):
    envs = vector.BuggyActor(token_reversal(num_envs=64, length=2, mode=mode), p=0.5, per="episode")
    envs.reset(seed=0)
    held, episodes = [], []
    for t in range(60):
        info = envs.step(np.ones(64, dtype=np.int64))[4]
        fired = info.get("_" + EXECUTED_ACTION, np.zeros(64, bool))
        if mode == AutoresetMode.NEXT_STEP and t % 3 == 2:
            assert not fired.any()  # the reset step
            continue
        held.append(fired)
        if len(held) == 2:
            assert (held[0] == held[1]).all(), "a per-episode bug switched inside an episode"
            episodes.append(held[0])
            held = []
    rates = np.mean(episodes, axis=0)
    assert 0.25 < rates.mean() < 0.75 and len({tuple(e) for e in episodes}) == len(episodes)  # redrawn every episode


def test_random_lag_per_episode_is_redrawn_per_sub_env_episode():
    envs = vector.StaleActor(token_reversal(num_envs=32, length=2), lag=3, random_lag=True, per="episode")
    for k in range(4):
        push_policy_snapshot(envs, ConstantActor(k % 2))
    envs.reset(seed=0)
    lags = []
    for t in range(30):
        info = envs.step(np.ones(32, dtype=np.int64))[4]
        if t % 3 == 0:
            lags.append(info[ACTOR_LAG])
        elif t % 3 == 1:
            assert (info[ACTOR_LAG] == lags[-1]).all()
    lags = np.array(lags)
    assert set(lags.ravel().tolist()) == {0, 1, 2, 3} and not (lags == lags[0]).all()


def test_partial_reset_redraws_only_the_masked_sub_envs():
    envs = vector.BuggyActor(toy_sync(n=8), p=0.5, per="episode")
    envs.reset(seed=0)
    before = envs._episode_fires.copy()
    mask = np.array([True, False] * 4)
    for _ in range(10):
        envs.reset(options={"reset_mask": mask})
        assert (envs._episode_fires[~mask] == before[~mask]).all()
    envs.reset(options={"reset_mask": mask.copy()})
    assert envs._all_live


@pytest.mark.parametrize("mode", MODES)
def test_p0_is_the_native_trajectory_in_both_modes(mode):
    def run(frictions):
        envs = apply_frictions(token_reversal(num_envs=5, length=4, mode=mode), **frictions)
        obs, _ = envs.reset(seed=3)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(20):
            obs, rewards, terminated, truncated, info = envs.step(rng.integers(0, 2, 5))
            out += [obs, rewards, terminated, info.get("token_accuracy")]
        return out

    clean = run({})
    for frictions in ({"bug": 0.0}, {"discovery": {"p": 0.0, "per": "episode"}}, {"reward_corruption": 0.0}, {"random_answer": 0.0}):
        for a, b in zip(clean, run(frictions), strict=True):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- one forward per step, one snapshot per push


def test_one_forward_pass_per_step_and_lag_semantics():
    envs = vector.StaleActor(toy_sync(n=4), lag=2)
    snapshots = [CountingActor(v) for v in (0, 1, 2, 3, 4)]
    envs.reset(seed=0)
    calls = 0
    for k, snapshot in enumerate(snapshots):
        assert push_policy_snapshot(envs, snapshot) == 4 and len(envs.snapshots) == min(k + 1, 3)
        info = envs.step(np.zeros(4, dtype=np.int64))[4]
        expected = max(0, k - 2)  # the snapshot 2 pushes old, else the oldest held
        acted = info["_" + EXECUTED_ACTION]
        assert info[EXECUTED_ACTION][acted].tolist() == [expected] * acted.sum()
        assert info[ACTOR_LAG][acted].tolist() == [min(k, 2)] * acted.sum()
        calls += 1
    assert sum(s.calls for s in snapshots) == calls  # one forward pass per step, whatever the number of sub-envs


def test_random_lag_calls_once_per_distinct_snapshot():
    envs = vector.StaleActor(token_reversal(num_envs=64), lag=2, random_lag=True)
    snapshots = [CountingActor(v % 2) for v in (0, 1, 2)]
    for snapshot in snapshots:
        envs.push_policy_snapshot(snapshot)
    envs.reset(seed=0)
    envs.step(np.ones(64, dtype=np.int64))
    assert [s.calls for s in snapshots] == [1, 1, 1] and sum(s.rows[0] for s in snapshots) == 64


def test_random_lag_update_calls_one_snapshot_once_per_step():
    """random_lag="update": one lag for the whole batch until the next push, so one forward pass per step."""
    envs = vector.StaleActor(token_reversal(num_envs=64), lag=2, random_lag="update")
    snapshots = [CountingActor(v % 2) for v in (0, 1, 2)]
    for snapshot in snapshots:
        envs.push_policy_snapshot(snapshot)
    envs.reset(seed=0)
    acting_steps = 0
    for _ in range(8):  # episodes of 3 steps, then a reset step (NEXT_STEP) on which nothing acts
        info = envs.step(np.ones(64, dtype=np.int64))[4]
        if "actor_lag" in info:
            acting_steps += 1
            assert len(set(info["actor_lag"][info["_actor_lag"]].tolist())) == 1
    assert acting_steps == 6 and sorted(s.calls for s in snapshots) == [0, 0, 6]
    assert all(rows == 64 for s in snapshots for rows in s.rows)


def test_one_snapshot_per_push_shared_inwards():
    """The outer vector actor stores one snapshot, hands the same object to an inner vector actor and
    to per-env actors inside a SyncVectorEnv; an SB3 policy is copied once."""
    sync = SyncVectorEnv([lambda: StaleActor(ToyEnv(), lag=0)] * 3)
    envs = vector.MismatchedActor(vector.BuggyActor(vector.StaleActor(sync, lag=1), p=0.0), noise_std=0.1)
    policy = sb3_policy(envs.single_observation_space, envs.single_action_space)
    assert push_policy_snapshot(envs, policy) == 3
    inner = envs.env.env
    snapshot = envs.snapshots.get(0)
    assert isinstance(snapshot, SB3PolicyActor) and len(envs.snapshots) == len(inner.snapshots) == 1
    assert inner.snapshots.get(0) is snapshot and all(sub.snapshots.get(0) is snapshot for sub in sync.envs)
    assert envs.push_policy_snapshot(ConstantActor(0)) == 1 + 1 + 3  # wrappers that stored it


def test_push_through_the_sb3_adapter_calls_once():
    vec_env = pytest.importorskip("dg_envs.vec_env")
    envs = vector.StaleActor(RecordEpisodeStatistics(token_reversal(num_envs=4, mode=AutoresetMode.SAME_STEP)), lag=1)
    venv = vec_env.GymnasiumVecEnv(envs)
    policy = sb3_policy(envs.single_observation_space, envs.single_action_space)
    assert push_policy_snapshot(venv, policy) == 4
    assert envs.snapshots.num_updates == 1
    venv.reset()
    infos = venv.step(np.zeros(4, dtype=np.int64))[3]
    assert all(info[FRICTIONS] == ("stale",) and info[ACTOR_LAG] == 0 for info in infos)


def test_vector_push_rejects_a_bad_policy_and_invalid_spaces():
    envs = vector.StaleActor(toy_sync(n=2), lag=1)
    with pytest.raises(TypeError, match="policy must be a Stable-Baselines3 policy"):
        push_policy_snapshot(envs, "x")
    with pytest.raises(TypeError, match="actor must be a Stable-Baselines3 policy"):
        envs.push_policy_snapshot("x")
    policy = sb3_policy(envs.single_observation_space, SPACES["multidiscrete"])
    with pytest.raises(ValueError, match=r"policy was built for .*MultiDiscrete.*Discrete\(5\)"):
        push_policy_snapshot(envs, policy)
    assert len(envs.snapshots) == 0
    assert push_policy_snapshot(toy_sync(n=2), policy) == 0  # nothing policy-driven: nothing copied


def test_log_probs_are_sb3s_for_the_executed_actions():
    import torch as th

    envs = vector.StaleActor(toy_sync(n=8), lag=0)
    policy = sb3_policy(envs.single_observation_space, envs.single_action_space)
    push_policy_snapshot(envs, policy)
    obs, _ = envs.reset(seed=0)
    info = envs.step(np.zeros(8, dtype=np.int64))[4]
    with th.no_grad():
        _, log_prob, _ = policy.evaluate_actions(th.as_tensor(obs), th.as_tensor(info[EXECUTED_ACTION]))
    np.testing.assert_allclose(info[BEHAVIOR_LOG_PROB], log_prob.numpy(), atol=1e-5)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_observation_raises_in_the_batched_actor(value):
    class NaNToy(ToyEnv):
        def _obs(self):
            return np.full_like(super()._obs(), value)

    envs = vector.MismatchedActor(SyncVectorEnv([NaNToy, ToyEnv]), noise_std=0.5)
    envs.reset(seed=0)
    envs.step(np.zeros(2, dtype=np.int64))  # no snapshot yet: the actor does not act, nothing to check
    push_policy_snapshot(envs, SB3PolicyActor(sb3_policy(envs.single_observation_space, envs.single_action_space)))
    with pytest.raises(ValueError, match="observation given to the mismatch actor is non-finite"):
        envs.step(np.zeros(2, dtype=np.int64))


# ---------------------------------------------------------------- masks, dtypes, third-party envs


@pytest.mark.parametrize("space", sorted(SPACES))
def test_masks_shapes_and_what_the_env_received(space):
    envs = vector.BuggyActor(toy_sync(space, n=6), p=0.5, bug="random")
    envs.reset(seed=4)
    single = SPACES[space]
    resetting = np.zeros(6, dtype=bool)
    for _ in range(30):
        actions = envs.action_space.sample()
        _, _, terminated, truncated, info = envs.step(actions)
        fired = info.get("_" + EXECUTED_ACTION, np.zeros(6, bool))
        for key in (EXECUTED_ACTION, BEHAVIOR_LOG_PROB, FRICTIONS):
            if fired.any():
                assert info["_" + key].tolist() == fired.tolist() and len(info[key]) == 6
        if fired.any():
            assert info[EXECUTED_ACTION].shape == (6, *single.shape)
            assert info[EXECUTED_ACTION].dtype == (np.int64 if space.startswith("discrete") else single.dtype)
        assert not (fired & resetting).any()
        for i, sub in enumerate(envs.unwrapped.envs):
            if not resetting[i]:  # a reset step does not step the env
                expected = info[EXECUTED_ACTION][i] if fired[i] else actions[i]
                np.testing.assert_array_equal(sub.last_action, expected)
        resetting = terminated | truncated


def test_cartpole_sync_with_an_sb3_policy_and_the_full_stack():
    envs = apply_frictions(
        gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync"),
        stale={"lag": 2, "random_lag": True}, bug=0.2, random_answer=0.1, reward_corruption=0.2,
        discovery={"p": 0.05, "oracle": lambda obs: np.zeros(len(obs), dtype=np.int64)},
    )
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", device="cpu", seed=0)
    assert push_policy_snapshot(envs, model.policy) == 4
    envs.reset(seed=0)
    seen = set()
    for _ in range(200):
        info = envs.step(envs.action_space.sample())[4]
        for sub in split_vector_info(info, 4):
            seen.update(sub.get(FRICTIONS, ()))
    assert seen == {"stale", "bug", "random_answer", "reward_corruption", "discovery"}


@pytest.mark.parametrize("wrap", [
    lambda e: vector.BuggyActor(e, p=1.0, bug="random"),
    lambda e: vector.RandomAnswer(e, p=1.0, reported_log_prob=None),
    lambda e: vector.BuggyActor(e, p=1.0, landmine=np.array([2.0], dtype=np.float32)),
], ids=["bug_random", "random_answer", "landmine"])
def test_box_actions_on_pendulum(wrap):
    envs = wrap(gym.make_vec("Pendulum-v1", num_envs=3, vectorization_mode="sync"))
    envs.reset(seed=0)
    for _ in range(5):
        info = envs.step(envs.action_space.sample())[4]
        executed = info[EXECUTED_ACTION]
        assert executed.shape == (3, 1) and executed.dtype == np.float32 and np.all(np.abs(executed) <= 2.0)
        assert np.all(info[BEHAVIOR_LOG_PROB] <= 0.0)


def test_async_vector_env():
    envs = vector.BuggyActor(AsyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2), p=1.0, landmine=1)
    try:
        envs.reset(seed=0)
        info = envs.step(np.zeros(2, dtype=np.int64))[4]
        assert info[EXECUTED_ACTION].tolist() == [1, 1] and info[FRICTIONS].tolist() == [("bug",), ("bug",)]
        with pytest.raises(ValueError, match="oracle"):  # an AsyncVectorEnv's sub-envs cannot be asked
            vector.RareDiscovery(envs, p=0.1)
    finally:
        envs.close()


def test_record_episode_statistics_composes_both_ways():
    """Inside the frictions it records the clean return; outside, the corrupted one."""
    inside = RecordEpisodeStatistics(token_reversal(num_envs=4, length=2))
    outer = vector.RewardCorruption(inside, p=1.0, mode="sign_flip", terminal_only=True)
    outside = RecordEpisodeStatistics(vector.RewardCorruption(token_reversal(num_envs=4, length=2), p=1.0, mode="sign_flip",
                                                              terminal_only=True))
    for envs in (outer, outside):
        envs.reset(seed=0)
        for _ in range(2):
            _, rewards, _, _, info = envs.step(np.zeros(4, dtype=np.int64))
        assert info["_episode"].all() and info["_" + FRICTIONS].all()
        returns = info["episode"]["r"]
        assert np.array_equal(returns, -rewards if envs is outer else rewards)
        assert np.array_equal(info[TRUE_REWARD], -rewards)


def test_native_token_reversal_with_the_experiments_settings():
    """The token-reversal experiment's stack (per-episode bug, reward, discovery; stale per step), batched."""
    envs = apply_frictions(
        token_reversal(num_envs=100, length=4),
        stale=8, bug={"p": 0.3, "per": "episode"}, reward_corruption={"p": 0.3, "per": "episode", "terminal_only": True},
        discovery={"p": 0.2, "per": "episode"},
    )
    push_policy_snapshot(envs, ConstantActor(1, log_prob=-0.5))
    envs.reset(seed=0)
    answers, fired = [], []
    for t in range(5):
        _, rewards, terminated, _, info = envs.step(np.ones(100, dtype=np.int64))
        if t < 4:
            answers.append(info[EXECUTED_ACTION])
            fired.append(split_vector_info(info, 100))
        if t == 3:
            assert info["_" + TRUE_REWARD].any()  # some answers' rewards were corrupted
        if t == 4:
            assert FRICTIONS not in info  # the reset step
    answers = np.array(answers).T
    for i in range(100):
        names = set(fired[0][i][FRICTIONS])
        assert all(set(step[i][FRICTIONS]) - {"reward_corruption"} == names for step in fired)  # the same all answer long
        if "discovery" not in names and "bug" in names:
            assert (answers[i] == 0).all()  # the landmine answer, whole
        if "discovery" not in names and "bug" not in names:
            assert (answers[i] == 1).all()  # the stale actor's


def test_a_single_env_is_not_a_vector_env():
    with pytest.raises(TypeError, match="env must be a gymnasium.vector.VectorEnv.*dg_envs.wrappers.StaleActor"):
        vector.StaleActor(gym.make("CartPole-v1"), lag=1)


def test_seeding_an_int_or_a_list_reproduces_and_none_keeps_the_stream():
    def draws(seed):
        envs = vector.BuggyActor(toy_sync(n=4), p=0.5)
        envs.reset(seed=seed)
        return [envs.step(np.zeros(4, dtype=np.int64))[4].get("_" + EXECUTED_ACTION, np.zeros(4, bool)).tolist() for _ in range(20)]

    assert draws(3) == draws(3) and draws([3, 4, 5, 6]) == draws([3, 4, 5, 6]) and draws(3) != draws(4)
    envs = vector.BuggyActor(toy_sync(n=4), p=0.5)
    envs.reset(seed=3)
    rng = envs.rng
    envs.reset()
    assert envs.rng is rng


def test_vector_wrappers_are_published_under_the_per_env_names():
    import pickle

    from dg_envs.wrappers.stale import VectorStaleActor

    assert vector.StaleActor is VectorStaleActor and vector.StaleActor.__module__ == "dg_envs.wrappers.vector"
    envs = vector.BuggyActor(toy_sync(n=2), p=0.5)
    assert repr(envs).startswith("<BuggyActor, SyncVectorEnv") and type(pickle.loads(pickle.dumps(envs))) is vector.BuggyActor


class _Plain(gym.vector.VectorWrapper):
    """A vector wrapper of another kind: friction layers around it see a finished info, not a step record."""


@pytest.mark.parametrize("mode", MODES)
def test_adjacent_layers_and_separated_layers_give_the_same_info(mode):
    """Adjacent friction layers write the info once (a step record); with another wrapper between each,
    every layer writes on a finished info. Same seeds, same actions: the same infos."""
    def run(separate):
        envs = toy_sync("discrete", n=6, mode=mode)
        layers = [
            lambda e: vector.RareDiscovery(e, p=0.2),
            lambda e: vector.RandomAnswer(e, p=0.2, per="episode"),
            lambda e: vector.BuggyActor(e, p=0.3),
            lambda e: vector.StaleActor(e, lag=1, p=0.7),
            lambda e: vector.RewardCorruption(e, p=0.5, mode="sign_flip"),
        ]
        for layer in layers:
            envs = layer(_Plain(envs) if separate else envs)
        push_policy_snapshot(envs, ConstantActor(3, log_prob=-2.0))
        envs.reset(seed=5)
        envs.action_space.seed(0)
        out = []
        for _ in range(60):
            obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
            out.append((rewards, split_vector_info(info, 6)))
        return out

    for (ra, ia), (rb, ib) in zip(run(False), run(True), strict=True):
        np.testing.assert_array_equal(ra, rb)
        for a, b in zip(ia, ib, strict=True):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(np.asarray(a[key], dtype=object), np.asarray(b[key], dtype=object))


def test_our_algorithms_and_the_callback_feed_a_vector_stale_actor_through_the_sb3_adapter():
    """DGPPO pushes at learn start and after every train(), SnapshotCallback likewise for PPO: one snapshot each time."""
    vec_env = pytest.importorskip("dg_envs.vec_env")
    from stable_baselines3 import PPO

    from dg_envs.algos import DGPPO
    from dg_envs.wrappers import SnapshotCallback

    def make():
        venv = vec_env.make_vec_env("dg_envs/TokenReversal-v0", n_envs=4, seed=0, env_kwargs={"length": 2}, frictions={"stale": 2})
        stale = venv.vector_env
        assert isinstance(stale, vector.StaleActor)
        return venv, stale

    venv, stale = make()
    model = DGPPO("MlpPolicy", venv, n_steps=8, batch_size=32, n_epochs=1, device="cpu", seed=0)
    model.learn(8 * 4 * 3)
    assert stale.snapshots.num_updates == 4 and model.relabelled_fraction == 1.0
    venv, stale = make()
    callback = SnapshotCallback()
    PPO("MlpPolicy", venv, n_steps=8, batch_size=32, n_epochs=1, device="cpu", seed=0).learn(8 * 4 * 3, callback=callback)
    assert callback.num_pushes == stale.snapshots.num_updates == 3
