"""Tests of the actors: SB3PolicyActor sampling and log-probs, the snapshot store, lag semantics, pushing."""

from __future__ import annotations

import os
import pickle
import re
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

sys.path.insert(0, os.path.dirname(__file__))
from _wrappers_test_utils import SPACES, ConstantActor, ToyEnv, binomial_interval, executions, sb3_policy  # noqa: E402

from dg_envs.wrappers import (  # noqa: E402
    Actor,
    BuggyActor,
    MismatchedActor,
    PolicySnapshotStore,
    SB3PolicyActor,
    SnapshotCallback,
    StaleActor,
    push_policy_snapshot,
)
from dg_envs.wrappers.protocol import BEHAVIOR_LOG_PROB, EXECUTED_ACTION, FRICTIONS  # noqa: E402

OBS_SPACE = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
ACTOR_SPACES = {**SPACES, "multibinary": spaces.MultiBinary(3)}


def _obs(n=64, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3)).astype(np.float32)


@pytest.mark.parametrize("space", sorted(ACTOR_SPACES))
def test_sb3_policy_actor_log_probs_match_sb3(space):
    action_space = ACTOR_SPACES[space]
    policy = sb3_policy(OBS_SPACE, action_space)
    actor = SB3PolicyActor(policy)
    assert isinstance(actor, Actor)
    obs = _obs()
    actions, log_probs = actor(obs, np.random.default_rng(0))
    assert actions.shape == (64, *action_space.shape) and log_probs.shape == (64,)
    assert all(action_space.contains(a) for a in actions) or isinstance(action_space, spaces.Box)
    start = np.asarray(getattr(action_space, "start", 0))
    with th.no_grad():
        dist = policy.get_distribution(policy.obs_to_tensor(obs)[0])
        expected = dist.log_prob(th.as_tensor(actions - start, dtype=th.float32 if space == "multibinary" else None)).numpy()
    np.testing.assert_allclose(log_probs, expected, atol=1e-5)


@pytest.mark.parametrize("space", ["discrete", "multidiscrete", "box"])
def test_noise_gives_log_probs_of_the_perturbed_distribution(space):
    actor = SB3PolicyActor(sb3_policy(OBS_SPACE, SPACES[space]))
    obs = _obs(2000)
    clean = actor(obs, np.random.default_rng(1))
    noisy_actions, noisy_log_probs = actor(obs, np.random.default_rng(1), noise_std=2.0)
    assert not np.allclose(clean[1], noisy_log_probs)
    if space == "box":  # noise on the mean: samples (std 1 at init) spread to sqrt(1 + 4)
        assert np.std(clean[0]) < 1.3 and np.std(noisy_actions) > 1.9
    else:  # noisy logits make the (near-uniform) initial policy visibly sharper on average
        assert np.mean(noisy_log_probs) > np.mean(clean[1]) + 0.1


def test_sampling_follows_the_distribution_and_uses_only_the_numpy_rng():
    policy = sb3_policy(OBS_SPACE, spaces.Discrete(4))
    actor = SB3PolicyActor(policy)
    obs = np.repeat(_obs(1), 20000, axis=0)
    state = th.random.get_rng_state()
    actions, log_probs = actor(obs, np.random.default_rng(2))
    assert th.equal(state, th.random.get_rng_state())
    freq = np.bincount(actions, minlength=4) / len(actions)
    probs = np.exp([log_probs[actions == k][0] for k in range(4)])
    # 4 sd of a frequency with n=20000 is < 0.015
    np.testing.assert_allclose(freq, probs, atol=0.015)
    again, _ = actor(obs, np.random.default_rng(2))
    np.testing.assert_array_equal(actions, again)


def test_snapshot_is_a_frozen_cpu_copy_without_optimizer_and_pickles():
    model = PPO("MlpPolicy", "CartPole-v1", device="cpu", seed=0, policy_kwargs={"net_arch": [64, 64]})
    actor = SB3PolicyActor(model.policy)
    assert actor.policy.optimizer is None and model.policy.optimizer is not None
    assert actor.policy.value_net is None and actor.policy.mlp_extractor.value_net is None  # actor only
    n_actor = sum(p.numel() for p in model.policy.mlp_extractor.policy_net.parameters()) + sum(
        p.numel() for p in model.policy.action_net.parameters()
    )
    assert sum(p.numel() for p in actor.policy.parameters()) == n_actor
    assert all(p.device.type == "cpu" and not p.requires_grad for p in actor.policy.parameters())
    obs = np.zeros((5, 4), dtype=np.float32)
    before = actor(obs, np.random.default_rng(0))
    with th.no_grad():
        for p in model.policy.parameters():
            p.add_(1.0)
    after = actor(obs, np.random.default_rng(0))
    np.testing.assert_array_equal(before[1], after[1])
    blob = pickle.dumps(actor)
    n_params = sum(p.numel() for p in actor.policy.parameters())
    assert len(blob) < 4 * n_params * 1.5 + 20_000  # float32 parameters + small overhead, no Adam state
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone(obs, np.random.default_rng(0))[1], before[1])


def test_snapshot_of_a_policy_with_unshared_extractors_keeps_only_the_actor():
    model = PPO("MlpPolicy", "CartPole-v1", device="cpu", seed=0, policy_kwargs={"share_features_extractor": False})
    actor = SB3PolicyActor(model.policy)
    assert actor.policy.vf_features_extractor is None and actor.policy.pi_features_extractor is not None
    obs = np.zeros((3, 4), dtype=np.float32)
    with th.no_grad():
        expected = model.policy.get_distribution(th.as_tensor(obs)).distribution.logits.numpy()
    actor._layers, actor._fast = None, False  # through get_distribution on the actor-only copy
    actions, log_probs = actor(obs, np.random.default_rng(0))
    np.testing.assert_allclose(log_probs, expected[np.arange(3), actions] - np.log(np.exp(expected).sum(1)), atol=1e-5)


def test_snapshot_during_training_copies_without_the_last_distribution():
    model = A2C("MlpPolicy", "CartPole-v1", n_steps=8, device="cpu", seed=0)
    model.learn(16)
    SB3PolicyActor(model.policy)  # the policy's action_dist holds non-leaf tensors now


def test_unsupported_distribution_raises():
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", "Pendulum-v1", device="cpu")
    with pytest.raises(NotImplementedError, match="SquashedDiagGaussian"):
        SB3PolicyActor(model.policy.actor)


def test_snapshot_store():
    store = PolicySnapshotStore(max_size=3)
    assert store.get(0) is None and store.num_updates == 0
    for k in range(5):
        store.push(k)
    assert [store.get(lag) for lag in range(5)] == [4, 3, 2, 2, 2]
    assert store.num_updates == 5 and len(store) == 3
    with pytest.raises(ValueError, match="max_size"):
        PolicySnapshotStore(0)


# ---------------------------------------------------------------- lag semantics


def _executed(X, env):
    """The actions the sub-envs executed on one step (-1: the learner's own, nothing recorded), as a set;
    a vector sub-env in its reset step (a ToyEnv's episode ends at random) records nothing either."""
    return {int(info.get(EXECUTED_ACTION, -1)) for info in X.step(env, 0)} - ({-1} if X.vector else set())


@executions()
def test_stale_actor_lag_semantics_with_distinguishable_snapshots(X):
    env = X.w.StaleActor(X.make(ToyEnv, gym.spaces.Discrete(10)), lag=2)
    env.reset(seed=0)
    assert _executed(X, env) <= {-1}  # no snapshot yet: the learner's action runs, nothing recorded
    env.push_policy_snapshot(ConstantActor(0, log_prob=-0.0))
    assert _executed(X, env) == {0}  # fewer than lag updates: the oldest
    env.push_policy_snapshot(ConstantActor(1, log_prob=-1.0))
    assert _executed(X, env) == {0}
    for k in range(2, 7):
        env.push_policy_snapshot(ConstantActor(k, log_prob=-float(k)))
        for info in X.step(env, 0):
            if EXECUTED_ACTION in info:  # (a vector sub-env may be in its reset step)
                assert info[EXECUTED_ACTION] == k - 2 and info[BEHAVIOR_LOG_PROB] == -(k - 2)
                assert info["actor_lag"] == 2


@executions()
def test_actor_lag_reports_the_age_of_the_snapshot_that_acted(X):
    env = X.w.StaleActor(X.make(ToyEnv, "discrete"), lag=3)
    env.reset(seed=1)
    assert all("actor_lag" not in info for info in X.step(env, 0))
    ages = []
    for k in range(5):
        env.push_policy_snapshot(ConstantActor(k % 5))
        ages.append({info["actor_lag"] for info in X.step(env, 0) if "actor_lag" in info})
    assert ages == [{0}, {1}, {2}, {3}, {3}]
    # an inner bug wins: its record is kept and the stale actor adds no lag to it
    env = X.w.StaleActor(X.w.BuggyActor(X.make(ToyEnv, "discrete"), p=1.0), lag=1)
    env.push_policy_snapshot(ConstantActor(1))
    env.reset(seed=0)
    for info in X.step(env, 0):
        assert info[FRICTIONS] == ["bug", "stale"] and info[EXECUTED_ACTION] == 0 and "actor_lag" not in info


@executions()
def test_random_lag_is_uniform_on_0_to_lag(X):
    env = X.w.StaleActor(X.make(ToyEnv, gym.spaces.Discrete(10)), lag=3, random_lag=True)
    for k in range(8):
        env.push_policy_snapshot(ConstantActor(k))
    lags = [7 - s["info"][EXECUTED_ACTION] for s in X.steps(env, 0, 2000)]
    counts = np.bincount(lags, minlength=4)
    assert len(counts) == 4 and np.all(np.abs(counts / len(lags) - 0.25) < 0.04), counts


@executions()
def test_random_lag_per_episode_is_held(X):
    env = X.w.StaleActor(X.make(ToyEnv, gym.spaces.Discrete(10)), lag=3, random_lag=True, per="episode")
    for k in range(8):
        env.push_policy_snapshot(ConstantActor(k))
    by_episode: dict[tuple[int, int], set] = {}
    for sub_env, steps in enumerate(X.rollouts(env, 0, 1000)):
        for s in steps:
            by_episode.setdefault((sub_env, s["episode"]), set()).add(int(s["info"][EXECUTED_ACTION]))
    assert all(len(v) == 1 for v in by_episode.values())
    assert set().union(*by_episode.values()) == {4, 5, 6, 7}


def _lags_per_push(X, env, pushes, lag, steps_per_push=3):
    """Push ``ConstantActor(k)`` for k = lag .. lag + pushes - 1 (after ``lag`` older ones), step; the lags seen after each push."""
    for k in range(lag):
        env.push_policy_snapshot(ConstantActor(k))
    seen = []
    for k in range(lag, lag + pushes):
        env.push_policy_snapshot(ConstantActor(k))
        infos = [info for _ in range(steps_per_push) for info in X.step(env, 0) if EXECUTED_ACTION in info]
        seen.append({(k - int(info[EXECUTED_ACTION]), int(info["actor_lag"])) for info in infos})
    return seen


@executions()
def test_random_lag_update_is_one_uniform_lag_per_push(X):
    """random_lag="update": one lag per push, the same for every step and sub-env until the next push
    (the reference's launcher draws one delay per batch), uniform on 0..lag across pushes."""
    env = X.w.StaleActor(X.make(ToyEnv, gym.spaces.Discrete(2000)), lag=3, random_lag="update")
    env.reset(seed=0)
    seen = _lags_per_push(X, env, pushes=1000, lag=3, steps_per_push=2)
    assert all(len(lags) == 1 for lags in seen), [lags for lags in seen if len(lags) != 1][:3]
    lags = [lag for (lag, actor_lag), in seen]
    assert all(actor_lag == lag for (lag, actor_lag), in seen)  # info["actor_lag"] is the drawn lag
    lo, hi = binomial_interval(len(lags), 0.25, level=0.999)  # four counts, each within its 99.9% interval
    counts = np.bincount(lags, minlength=4)
    assert len(counts) == 4 and np.all((lo <= counts) & (counts <= hi)), counts


@executions()
def test_random_lag_update_is_seeded_even_when_pushed_before_the_seeded_reset(X):
    """The lag is drawn at the first step after a push, so the same seed gives the same lags wherever the push was."""

    def lags(push_first):
        env = X.w.StaleActor(X.make(ToyEnv, gym.spaces.Discrete(1000)), lag=4, random_lag="update")
        if push_first:
            env.push_policy_snapshot(ConstantActor(999))
        env.reset(seed=7)
        return [lag for (lag, _), in _lags_per_push(X, env, pushes=30, lag=4, steps_per_push=1)]

    assert lags(True) == lags(False) and len(set(lags(True))) > 1


def _zero_logits_policy(space):
    """An SB3 policy whose logits (Box: mean) are 0 whatever the observation: the bias alone shapes the actor."""
    policy = sb3_policy(OBS_SPACE, space)
    with th.no_grad():
        policy.action_net.weight.zero_()
        policy.action_net.bias.zero_()
    return policy


def _log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    return x - np.logaddexp.reduce(x)


def _biased_log_prob(space, bias, action):
    """log-prob of ``action`` when the logits (Box: the mean, std 1) are exactly ``bias``."""
    if isinstance(space, spaces.Discrete):
        return _log_softmax(bias)[int(action) - space.start]
    if isinstance(space, spaces.MultiDiscrete):
        parts = np.split(bias, np.cumsum(space.nvec)[:-1])
        return sum(_log_softmax(part)[int(a)] for part, a in zip(parts, action, strict=True))
    return float(np.sum(-0.5 * (np.asarray(action, dtype=np.float64) - bias) ** 2 - 0.5 * np.log(2 * np.pi)))


@executions()
@pytest.mark.parametrize("space", ["discrete", "discrete_start", "multidiscrete", "box"])
def test_fixed_bias_mismatch_acts_with_one_held_bias(X, space):
    """noise="fixed_bias" (the reference's logit_noise.py): one N(0, I) vector times noise_std, drawn at
    the first seeded reset and held; with zero logits the actor samples from softmax(bias) (Box: N(bias, 1))
    and reports that log-prob exactly, in every sub-env."""
    action_space = SPACES[space]
    env = X.w.MismatchedActor(X.make(ToyEnv, space), noise_std=2.0, noise="fixed_bias")
    env.push_policy_snapshot(_zero_logits_policy(action_space))
    width = action_space.n if space.startswith("discrete") else int(np.sum(action_space.nvec)) if space == "multidiscrete" else 2
    steps = X.steps(env, 3, 2000)
    bias = env.logit_bias
    assert bias.shape == (width,) and not bias.flags.writeable
    executed = [s["info"][EXECUTED_ACTION] for s in steps]
    reported = np.array([s["info"][BEHAVIOR_LOG_PROB] for s in steps])
    np.testing.assert_allclose(reported, [_biased_log_prob(action_space, bias, a) for a in executed], atol=1e-5)
    if space == "box":  # the mean is the bias
        np.testing.assert_allclose(np.mean(executed, axis=0), bias, atol=0.12)
    elif space != "multidiscrete":
        freq = np.bincount(np.asarray(executed) - action_space.start, minlength=action_space.n) / len(executed)
        np.testing.assert_allclose(freq, np.exp(_log_softmax(bias)), atol=0.05)
    # held for the wrapper's life (unseeded and seeded resets alike); the same seed draws the same bias
    env.reset()
    env.reset(seed=99)
    assert env.logit_bias is bias
    twin = X.w.MismatchedActor(X.make(ToyEnv, space), noise_std=2.0, noise="fixed_bias")
    twin.reset(seed=3)
    np.testing.assert_array_equal(twin.logit_bias, bias)
    other = X.w.MismatchedActor(X.make(ToyEnv, space), noise_std=2.0, noise="fixed_bias")
    other.reset(seed=4)
    assert not np.allclose(other.logit_bias, bias)


@executions()
def test_fixed_bias_is_off_by_default_and_reaches_the_stale_mismatch_actor(X):
    assert X.w.MismatchedActor(X.make(ToyEnv, "discrete"), noise_std=1.0).logit_bias is None  # "per_step"
    env = X.w.apply_frictions(X.make(ToyEnv, "discrete"), stale={"lag": 2, "random_lag": "update"},
                              mismatch={"noise_std": 0.5, "noise": "fixed_bias"})
    assert (env.lag, env.random_lag, env.noise) == (2, "update", "fixed_bias")
    env.reset(seed=0)
    assert env.logit_bias.shape == (5,) and np.all(np.abs(env.logit_bias) < 0.5 * 6)


@executions()
def test_fixed_bias_needs_an_actor_taking_logit_bias(X):
    env = X.w.MismatchedActor(X.make(ToyEnv, "discrete"), noise_std=1.0, noise="fixed_bias")
    with pytest.raises(TypeError, match="logit_bias"):
        env.push_policy_snapshot(ConstantActor(1))
    env.push_policy_snapshot(lambda obs, rng, noise_std=0.0, **kwargs: (np.zeros(len(obs), dtype=np.int64), np.zeros(len(obs))))
    X.w.MismatchedActor(X.make(ToyEnv, "discrete"), noise_std=1.0).push_policy_snapshot(ConstantActor(1))  # per_step: any Actor


@pytest.mark.parametrize("space", sorted(ACTOR_SPACES))
def test_sb3_policy_actor_logit_bias_gives_the_biased_distribution(space):
    """actor(obs, rng, logit_bias=b): b is added to every row's logits (Box: mean); log-probs are the biased ones."""
    action_space = ACTOR_SPACES[space]
    policy = sb3_policy(OBS_SPACE, action_space)
    actor = SB3PolicyActor(policy)
    width = {"discrete": 5, "discrete_start": 4, "multidiscrete": 7, "box": 2, "multibinary": 3}[space]
    bias = np.random.default_rng(5).standard_normal(width)
    obs = _obs(256)
    actions, log_probs = actor(obs, np.random.default_rng(0), logit_bias=bias)
    start = np.asarray(getattr(action_space, "start", 0))
    with th.no_grad():
        dist = policy.get_distribution(policy.obs_to_tensor(obs)[0]).distribution
        b = th.as_tensor(bias, dtype=th.float32)
        taken = th.as_tensor(actions - start)
        if space in ("discrete", "discrete_start"):
            expected = th.distributions.Categorical(logits=dist.logits + b).log_prob(taken)
        elif space == "multidiscrete":
            parts = th.split(b, list(action_space.nvec))
            expected = sum(th.distributions.Categorical(logits=d.logits + part).log_prob(taken[:, i])
                           for i, (d, part) in enumerate(zip(dist, parts, strict=True)))
        elif space == "multibinary":
            expected = th.distributions.Bernoulli(logits=dist.logits + b).log_prob(taken.float()).sum(-1)
        else:
            expected = th.distributions.Normal(dist.mean + b, dist.stddev).log_prob(taken.float()).sum(-1)
    np.testing.assert_allclose(log_probs, expected.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match=rf"logit_bias must have shape \({width},\)"):
        actor(obs, np.random.default_rng(0), logit_bias=np.zeros(width + 1))


@executions()
def test_push_forwards_to_inner_policy_wrappers(X):
    inner = X.w.MismatchedActor(X.make(ToyEnv, "discrete"), noise_std=0.1)
    outer = X.w.StaleActor(X.w.BuggyActor(inner, p=0.0), lag=1)
    assert outer.push_policy_snapshot(ConstantActor(1)) == 2
    assert outer.snapshots.num_updates == inner.snapshots.num_updates == 1
    assert outer.snapshots.get(0) is inner.snapshots.get(0)
    # the inner (mismatched) actor is what the env executes: innermost replacement wins
    outer.reset(seed=0)
    assert all(info[FRICTIONS] == ["mismatch", "stale"] for info in X.step(outer, 0))


# ---------------------------------------------------------------- push_policy_snapshot on vec envs


def test_push_to_dummy_vec_env_shares_one_copy():
    venv = make_vec_env(lambda: ToyEnv("discrete"), n_envs=3, wrapper_class=StaleActor, wrapper_kwargs={"lag": 1})
    policy = sb3_policy(OBS_SPACE, SPACES["discrete"])
    assert push_policy_snapshot(venv, policy) == 3
    snapshots = [env.snapshots.get(0) for env in venv.envs]
    assert isinstance(snapshots[0], SB3PolicyActor) and all(s is snapshots[0] for s in snapshots)
    venv.reset()
    infos = venv.step(np.zeros(3, dtype=np.int64))[3]
    assert all(info[FRICTIONS] == ["stale"] for info in infos)


def test_push_is_a_cheap_noop_without_policy_wrappers(monkeypatch):
    venv = DummyVecEnv([lambda: BuggyActor(ToyEnv("discrete"), p=0.5)] * 2)
    calls = []
    original = venv.has_attr
    monkeypatch.setattr(venv, "has_attr", lambda name: calls.append(name) or original(name))
    policy = sb3_policy(OBS_SPACE, SPACES["discrete"])
    assert push_policy_snapshot(venv, policy) == 0
    assert push_policy_snapshot(venv, policy) == 0
    assert calls == ["push_policy_snapshot"]  # asked once, then cached
    assert push_policy_snapshot(ToyEnv("discrete"), policy) == 0


def _stale_toy():
    return StaleActor(ToyEnv("discrete"), lag=0)


def test_push_to_subproc_vec_env():
    venv = SubprocVecEnv([_stale_toy, _stale_toy], start_method="fork")
    try:
        assert push_policy_snapshot(venv, ConstantActor(3, log_prob=-0.25)) == 2
        venv.reset()
        infos = venv.step(np.zeros(2, dtype=np.int64))[3]
        assert [(int(i[EXECUTED_ACTION]), i[BEHAVIOR_LOG_PROB]) for i in infos] == [(3, -0.25), (3, -0.25)]
        policy = sb3_policy(OBS_SPACE, SPACES["discrete"])
        assert push_policy_snapshot(venv, policy) == 2  # an SB3PolicyActor pickled across the pipes
        infos = venv.step(np.zeros(2, dtype=np.int64))[3]
        assert all(i[BEHAVIOR_LOG_PROB] < 0 for i in infos)
    finally:
        venv.close()


def test_snapshot_callback_counts_train_calls():
    venv = make_vec_env(lambda: ToyEnv("discrete"), n_envs=2, wrapper_class=StaleActor, wrapper_kwargs={"lag": 2})
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=3, device="cpu", seed=0, policy_kwargs={"net_arch": [8]})
    callback = SnapshotCallback()
    model.learn(total_timesteps=16 * 4, callback=callback)
    # 4 rollouts: a push at training start, then after each of the 3 train() calls that precede a rollout
    assert callback.num_pushes == 4
    assert venv.envs[0].snapshots.num_updates == 4
    assert venv.envs[0].snapshots.get(2) is not venv.envs[0].snapshots.get(0)


@pytest.mark.parametrize("space", sorted(ACTOR_SPACES))
def test_fast_path_equals_get_distribution(space):
    """The fast path for plain ActorCriticPolicy samples exactly what get_distribution gives."""
    actor = SB3PolicyActor(sb3_policy(OBS_SPACE, ACTOR_SPACES[space]))
    assert actor._fast and actor._layers is not None
    obs = _obs(50)
    results = [actor(obs, np.random.default_rng(0), noise_std=0.3)]  # numpy MLP
    actor._layers = None
    results.append(actor(obs, np.random.default_rng(0), noise_std=0.3))  # torch modules
    actor._fast = False
    results.append(actor(obs, np.random.default_rng(0), noise_std=0.3))  # get_distribution
    for actions, log_probs in results[:2]:
        np.testing.assert_allclose(actions, results[2][0], atol=1e-6)  # float rounding only (Box)
        np.testing.assert_allclose(log_probs, results[2][1], atol=1e-5)


@pytest.mark.parametrize(
    "obs_space",
    [spaces.Discrete(5), spaces.MultiDiscrete([2, 3, 4]), spaces.MultiDiscrete([2] * 10 + [3] * 10 + [11])],
    ids=["discrete", "multidiscrete", "token_reversal"],
)
def test_fast_path_one_hot_encodes_discrete_observations_as_sb3(obs_space):
    """Discrete observations take the numpy path too, one-hot encoded exactly as SB3's preprocess_obs."""
    actor = SB3PolicyActor(sb3_policy(obs_space, spaces.Discrete(3)))
    assert actor._layers is not None
    obs_space.seed(0)
    obs = np.stack([obs_space.sample() for _ in range(40)])
    numpy_path = actor(obs, np.random.default_rng(0), noise_std=0.3)
    actor._layers = None  # the torch modules, through SB3's own preprocessing
    torch_path = actor(obs, np.random.default_rng(0), noise_std=0.3)
    np.testing.assert_array_equal(numpy_path[0], torch_path[0])
    np.testing.assert_allclose(numpy_path[1], torch_path[1], atol=1e-5)


def test_numpy_path_is_not_taken_for_a_shifted_discrete_observation():
    actor = SB3PolicyActor(sb3_policy(spaces.Discrete(5, start=1), spaces.Discrete(3)))
    assert actor._layers is None  # SB3 one-hot encodes the raw value; only start 0 is mirrored


def test_numpy_path_shares_the_snapshot_weights_and_survives_pickling():
    from stable_baselines3.common.policies import ActorCriticCnnPolicy

    actor = SB3PolicyActor(sb3_policy(OBS_SPACE, SPACES["discrete"]))
    weight = actor.policy.mlp_extractor.policy_net[0].weight
    assert np.shares_memory(actor._layers[0][0], weight.numpy())  # a view, not a copy
    clone = pickle.loads(pickle.dumps(actor))
    assert clone._layers is not None and np.shares_memory(clone._layers[0][0], clone.policy.mlp_extractor.policy_net[0].weight.numpy())
    obs = _obs(10)
    np.testing.assert_array_equal(actor(obs, np.random.default_rng(1))[0], clone(obs, np.random.default_rng(1))[0])
    # Not a plain MLP on a flat Box: the torch path.
    image = spaces.Box(0, 255, (3, 36, 36), dtype=np.uint8)
    cnn = ActorCriticCnnPolicy(image, SPACES["discrete"], lr_schedule=lambda _: 1e-3)
    assert SB3PolicyActor(cnn)._layers is None


@pytest.mark.parametrize("bits", [2, 8])
def test_quantized_actor_acts_with_a_coarser_policy(bits):
    policy = sb3_policy(OBS_SPACE, SPACES["discrete"])
    actor = SB3PolicyActor(policy, quantize_bits=bits)
    for (name, exact), quantized in zip(policy.named_parameters(), actor.policy.parameters()):
        if "value" in name or "vf" in name:
            continue
        levels = np.unique(quantized.numpy())
        assert len(levels) <= 2**bits
        step = (exact.max() - exact.min()).item() / (2**bits - 1)
        assert np.abs(quantized.numpy() - exact.detach().numpy()).max() <= step / 2 + 1e-6
    obs = _obs(200)
    exact_lp = SB3PolicyActor(policy)(obs, np.random.default_rng(0))[1]
    quant_lp = actor(obs, np.random.default_rng(0))[1]
    assert not np.allclose(exact_lp, quant_lp, atol=1e-7)  # a different (coarser) policy acted
    if bits == 8:
        np.testing.assert_allclose(exact_lp, quant_lp, atol=0.05)  # ... but close to the learner's


def test_quantize_bits_is_validated_and_reaches_the_wrappers():
    with pytest.raises(ValueError, match="quantize_bits"):
        SB3PolicyActor(sb3_policy(OBS_SPACE, SPACES["discrete"]), quantize_bits=0)
    with pytest.raises(ValueError, match="quantize_bits"):
        SnapshotCallback(quantize_bits=True)
    env = StaleActor(ToyEnv("discrete"), lag=0)
    assert push_policy_snapshot(env, sb3_policy(OBS_SPACE, SPACES["discrete"]), quantize_bits=4) == 1
    assert env.snapshots.get(0).quantize_bits == 4


# ---------------------------------------------------------------- bad input at push time and at the actor's step


def test_push_policy_snapshot_rejects_a_bad_policy():
    """Not a policy: a TypeError at push time naming the argument and what is accepted (not at the next step)."""
    env = StaleActor(ToyEnv("discrete"), lag=1)
    for bad in ("x", 3, None):
        with pytest.raises(TypeError, match="policy must be a Stable-Baselines3 policy .* or an Actor"):
            push_policy_snapshot(env, bad)
        with pytest.raises(TypeError, match="actor must be a Stable-Baselines3 policy .* or an Actor"):
            env.push_policy_snapshot(bad)
    venv = make_vec_env(lambda: ToyEnv("discrete"), n_envs=2, wrapper_class=StaleActor, wrapper_kwargs={"lag": 1})
    with pytest.raises(TypeError, match="policy must be"):
        push_policy_snapshot(venv, "x")
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, device="cpu")
    with pytest.raises(TypeError, match=r"pass policy=model\.policy"):
        push_policy_snapshot(venv, model)
    with pytest.raises(TypeError, match="policy must be a Stable-Baselines3 policy"):
        SB3PolicyActor("x")
    assert len(env.snapshots) == 0 and all(len(e.snapshots) == 0 for e in venv.envs)
    env.reset(seed=0)
    assert EXECUTED_ACTION not in env.step(0)[4]  # nothing was stored: the learner's action still runs


@pytest.mark.parametrize(
    "observation_space, action_space",
    [
        (OBS_SPACE, spaces.Discrete(3)),  # another action space
        (spaces.Box(-1.0, 1.0, (4,), dtype=np.float32), SPACES["discrete"]),  # another observation space
        (OBS_SPACE, spaces.Box(-1.0, 1.0, (5,), dtype=np.float32)),
    ],
)
def test_push_policy_snapshot_rejects_a_policy_of_invalid_spaces(observation_space, action_space):
    """A policy for other spaces: a ValueError at push time naming both spaces (it used to fail at the next
    step with 'cannot reshape'), for a gym env, a DummyVecEnv, a SubprocVecEnv and a direct push."""
    policy = sb3_policy(observation_space, action_space)
    env = StaleActor(ToyEnv("discrete"), lag=1)
    both = rf"policy was built for observation space {re.escape(str(observation_space))} and action space {re.escape(str(action_space))}"
    env_side = rf"observation space {re.escape(str(OBS_SPACE))} and action space {re.escape(str(SPACES['discrete']))}"
    with pytest.raises(ValueError, match=f"{both}, but StaleActor has {env_side}"):
        push_policy_snapshot(env, policy)
    with pytest.raises(ValueError, match=r"^actor was built for"):
        env.push_policy_snapshot(SB3PolicyActor(policy))
    with pytest.raises(ValueError, match=both):
        push_policy_snapshot(MismatchedActor(ToyEnv("discrete"), noise_std=0.1), policy)
    venv = make_vec_env(lambda: ToyEnv("discrete"), n_envs=2, wrapper_class=StaleActor, wrapper_kwargs={"lag": 1})
    with pytest.raises(ValueError, match=both):
        push_policy_snapshot(venv, policy)
    subproc = SubprocVecEnv([_stale_toy, _stale_toy], start_method="fork")
    try:
        with pytest.raises(ValueError, match=both):  # raised in this process: the workers live on
            push_policy_snapshot(subproc, policy)
        assert push_policy_snapshot(subproc, sb3_policy(OBS_SPACE, SPACES["discrete"])) == 2
    finally:
        subproc.close()


def test_push_policy_snapshot_accepts_a_policy_of_the_same_sizes():
    """SB3 flattens Box observations and transposes images itself: the size decides, not the bounds or layout."""
    env = StaleActor(ToyEnv("box"), lag=0)
    policy = sb3_policy(spaces.Box(-5.0, 5.0, (3,), dtype=np.float32), spaces.Box(-2.0, 2.0, (2,), dtype=np.float32))
    assert push_policy_snapshot(env, policy) == 1 and env.push_policy_snapshot(policy) == 1  # an SB3 policy is copied
    assert isinstance(env.snapshots.get(0), SB3PolicyActor)


class NonFiniteObsEnv(ToyEnv):
    """A ToyEnv whose observations hold ``value`` (NaN or inf) from the ``bad_from``-th step on."""

    def __init__(self, value, bad_from=1, action_space="discrete"):
        super().__init__(action_space)
        self.value, self.bad_from = value, bad_from

    def _obs(self):
        obs = super()._obs()
        if self._t >= self.bad_from:
            obs = obs.copy()
            obs[1] = self.value
        return obs


@executions()
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("make, name", [(lambda W, e: W.StaleActor(e, lag=1), "stale"), (lambda W, e: W.MismatchedActor(e, noise_std=0.5), "mismatch")])
def test_nonfinite_observation_raises_in_stale_and_mismatched_actor(X, make, name, value):
    """A NaN observation used to play action 0 with a NaN log-prob, silently; now a ValueError names it."""
    env_of = X.make(NonFiniteObsEnv, value)
    env = make(X.w, env_of)
    env.push_policy_snapshot(SB3PolicyActor(sb3_policy(OBS_SPACE, SPACES["discrete"])))
    env.reset(seed=0)
    assert all(np.isfinite(info[BEHAVIOR_LOG_PROB]) for info in X.step(env, 0))  # a finite observation: the actor acts
    with pytest.raises(ValueError, match=f"observation given to the {name} actor is non-finite"):
        X.step(env, 0)
    assert all(sub._t == 1 for sub in X.sub_envs(env_of))  # raised before the inner env stepped


@executions()
def test_nonfinite_observation_is_not_checked_before_a_snapshot_or_when_the_actor_does_not_act(X):
    env = X.w.StaleActor(X.make(NonFiniteObsEnv, np.nan, bad_from=0), lag=1)
    env.reset(seed=0)
    X.step(env, 0)  # no snapshot: the learner's action runs, the actor never sees the observation
    env = X.w.StaleActor(X.make(NonFiniteObsEnv, np.nan, bad_from=0), lag=1, p=0.0)
    env.push_policy_snapshot(ConstantActor(1))
    env.reset(seed=0)
    X.step(env, 0)


def test_invalid_snapshot_store_size_and_numpy_quantize_bits():
    for bad in (0, 1.5, True, "3"):
        with pytest.raises(ValueError, match="max_size must be an integer >= 1"):
            PolicySnapshotStore(bad)
    assert PolicySnapshotStore(np.int64(2)).max_size == 2
    for bad in (17, 2.0, np.bool_(True)):
        with pytest.raises(ValueError, match=r"quantize_bits must be None or an integer in 1\.\.16"):
            SnapshotCallback(quantize_bits=bad)
    assert SB3PolicyActor(sb3_policy(OBS_SPACE, SPACES["discrete"]), quantize_bits=np.int64(8)).quantize_bits == 8
