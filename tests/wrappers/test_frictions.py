"""Tests of the friction wrappers: rates, p=0 / p=1, per-episode, semantics, validation.

Each property test runs on both executions, ``X`` (see ``_wrappers_test_utils.Execution``):
the per-env wrapper around a ``ToyEnv``, and the vector wrapper of the same name around a
``SyncVectorEnv`` of them, read sub-env by sub-env. ``check_env`` and pickling are per-env.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
from _wrappers_test_utils import (  # noqa: E402
    EXECUTIONS,
    SPACES,
    ConstantActor,
    Execution,
    ToyEnv,
    binomial_interval,
    executions,
    rollout,
    sb3_policy,
)

import dg_envs  # noqa: E402,F401  (registers the ids)
from dg_envs.envs import MUJOCO_IDS  # noqa: E402
from dg_envs.wrappers import (  # noqa: E402
    CANONICAL_ORDER,
    BuggyActor,
    MismatchedActor,
    PolicyOracle,
    RareDiscovery,
    SB3PolicyActor,
    StaleActor,
    apply_frictions,
    push_policy_snapshot,
)
from dg_envs.wrappers.protocol import BEHAVIOR_LOG_PROB, EXECUTED_ACTION, FRICTIONS, TRUE_REWARD  # noqa: E402

_ACTORS: dict = {}


def policy_actor(env) -> SB3PolicyActor:
    """An SB3PolicyActor from a real SB3 policy for this env's (single) spaces (cached per space pair)."""
    obs_space = getattr(env, "single_observation_space", env.observation_space)
    act_space = getattr(env, "single_action_space", env.action_space)
    key = (repr(obs_space), repr(act_space))
    if key not in _ACTORS:
        _ACTORS[key] = SB3PolicyActor(sb3_policy(obs_space, act_space))
    return _ACTORS[key]


def _with_snapshot(wrapped):
    push_policy_snapshot(wrapped, policy_actor(wrapped))
    return wrapped


#: name -> (factory(W, env, p, per) with W the wrappers' namespace, friction name recorded, replaces the action?)
WRAPPERS = {
    "stale": (lambda W, env, p, per: _with_snapshot(W.StaleActor(env, lag=1, p=p, per=per)), "stale", True),
    "mismatch": (lambda W, env, p, per: _with_snapshot(W.MismatchedActor(env, noise_std=1.0, p=p, per=per)), "mismatch", True),
    "bug_landmine": (lambda W, env, p, per: W.BuggyActor(env, p, per=per), "bug", True),
    "bug_random": (lambda W, env, p, per: W.BuggyActor(env, p, bug="random", per=per), "bug", True),
    "bug_callable": (lambda W, env, p, per: W.BuggyActor(env, p, bug=lambda o, a, rng: a, per=per), "bug", True),
    "random_answer": (lambda W, env, p, per: W.RandomAnswer(env, p, per=per), "random_answer", True),
    "reward_coin": (lambda W, env, p, per: W.RewardCorruption(env, p, per=per), "reward_corruption", False),
    "reward_gaussian": (lambda W, env, p, per: W.RewardCorruption(env, p, mode="gaussian", per=per), "reward_corruption", False),
    "reward_sign_flip": (lambda W, env, p, per: W.RewardCorruption(env, p, mode="sign_flip", per=per), "reward_corruption", False),
    "discovery": (lambda W, env, p, per: W.RareDiscovery(env, p, per=per), "discovery", True),
}


def fired(step: dict, name: str) -> bool:
    return name in step["info"].get(FRICTIONS, ())


FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def any_wrapper_setting(test):
    """Hypothesis over every wrapper, action space, granularity and seed (and, outside, both executions)."""
    return FAST(given(name=st.sampled_from(sorted(WRAPPERS)), space=st.sampled_from(sorted(SPACES)),
                      per=st.sampled_from(["step", "episode"]), seed=st.integers(0, 2**31 - 1))(test))


@executions()
@any_wrapper_setting
def test_p0_leaves_the_trajectory_identical(X, name, space, per, seed):
    factory, _, _ = WRAPPERS[name]
    clean = X.rollouts(X.make(ToyEnv, space), seed, 60)
    wrapped = X.rollouts(factory(X.w, X.make(ToyEnv, space), 0.0, per), seed, 60)
    for clean_steps, steps in zip(clean, wrapped, strict=True):
        for a, b in zip(clean_steps, steps, strict=True):
            np.testing.assert_array_equal(a["obs"], b["obs"])
            assert (a["reward"], a["terminated"], a["truncated"]) == (b["reward"], b["terminated"], b["truncated"])
            assert a["info"] == b["info"]  # no friction keys at all


@executions()
@any_wrapper_setting
def test_p1_always_fires(X, name, space, per, seed):
    factory, friction, replaces = WRAPPERS[name]
    env = factory(X.w, X.make(ToyEnv, space), 1.0, per)
    for step in X.steps(env, seed, 60):
        assert fired(step, friction)
        assert (EXECUTED_ACTION in step["info"]) == replaces
        if replaces:
            executed = step["info"][EXECUTED_ACTION]
            if isinstance(SPACES[space], spaces.Box):
                executed = np.clip(executed, -1.0, 1.0)
            np.testing.assert_array_equal(step["received"], executed)


def test_binomial_interval_matches_known_values():
    # Bin(3000, 0.3): mean 900, sd 25.1; a 99% interval is about mean +- 2.576 sd.
    lo, hi = binomial_interval(3000, 0.3)
    assert 833 <= lo <= 837 and 963 <= hi <= 967
    assert binomial_interval(10, 0.5) == (1, 9)


#: The rate tests' interval: 99.9%, since about 60 of them run (wrappers x spaces x executions), each
#: its own seeded sample; at 99% one of them would fall outside by chance.
RATE_LEVEL = 0.999


@executions()
@pytest.mark.parametrize("name", sorted(WRAPPERS))
@pytest.mark.parametrize("space", ["discrete", "box"])
def test_rate_at_p03_per_step_is_binomial(X, name, space):
    factory, friction, _ = WRAPPERS[name]
    steps = X.steps(factory(X.w, X.make(ToyEnv, space), 0.3, "step"), seed=7, n_steps=3000)
    count = sum(fired(s, friction) for s in steps)
    lo, hi = binomial_interval(len(steps), 0.3, level=RATE_LEVEL)
    assert lo <= count <= hi, (count, lo, hi)


@executions()
@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_rate_at_p03_per_episode_is_binomial_and_held(X, name):
    factory, friction, _ = WRAPPERS[name]
    by_episode: dict[tuple[int, int], set] = {}
    for sub_env, steps in enumerate(X.rollouts(factory(X.w, X.make(ToyEnv, "multidiscrete"), 0.3, "episode"), seed=11, n_steps=6000)):
        for s in steps:
            by_episode.setdefault((sub_env, s["episode"]), set()).add(fired(s, friction))
    assert all(len(v) == 1 for v in by_episode.values()), "a per-episode friction switched inside an episode"
    count = sum(v == {True} for v in by_episode.values())
    lo, hi = binomial_interval(len(by_episode), 0.3, level=RATE_LEVEL)
    assert lo <= count <= hi, (count, lo, hi, len(by_episode))


@executions()
def test_seed_goes_unchanged_to_the_inner_env_and_streams_differ_per_class(X):
    env = X.w.apply_frictions(X.make(ToyEnv, "discrete"), bug=0.5, reward_corruption=0.5, discovery=0.5, random_answer=0.5)
    obs, _ = env.reset(seed=3)
    raw_obs, _ = X.make(ToyEnv, "discrete").reset(seed=3)
    np.testing.assert_array_equal(obs, raw_obs)
    layers = [env, env.env, env.env.env, env.env.env.env]
    draws = [layer.rng.random(4).tolist() for layer in layers]
    assert len({tuple(d) for d in draws}) == 4


@executions()
def test_reseeding_reproduces_the_frictions(X):
    def run():
        env = X.w.apply_frictions(
            X.make(ToyEnv, "box"), bug={"p": 0.3, "bug": "random"}, reward_corruption={"p": 0.3, "mode": "gaussian"},
            discovery=0.2, random_answer=0.1,
        )
        return X.steps(env, seed=5, n_steps=200)

    a, b = run(), run()
    assert any(FRICTIONS in x["info"] for x in a)
    for x, y in zip(a, b, strict=True):
        assert x["reward"] == y["reward"] and x["info"].get(FRICTIONS) == y["info"].get(FRICTIONS)


def test_per_env_and_vector_streams_differ():
    """A per-env wrapper in sub-env 0 (seeded seed + 0) and a vector wrapper seeded ``seed`` draw apart."""
    env, envs = BuggyActor(ToyEnv(), p=0.5), Execution("vector").w.BuggyActor(Execution("vector").make(), p=0.5)
    env.reset(seed=3)
    envs.reset(seed=3)
    assert env.rng.random(4).tolist() != envs.rng.random(4).tolist()


# ---------------------------------------------------------------- each wrapper's own semantics


@executions()
@pytest.mark.parametrize("space", sorted(SPACES))
def test_landmine_defaults_to_the_zero_action_and_reports_certainty(X, space):
    env = X.w.BuggyActor(X.make(ToyEnv, space), p=1.0)
    env.reset(seed=0)
    expected = {"discrete": 0, "discrete_start": 2, "multidiscrete": [0, 0], "box": [0.0, 0.0]}[space]
    for info in X.step(env, SPACES[space].sample()):
        np.testing.assert_array_equal(info[EXECUTED_ACTION], expected)
        assert info[BEHAVIOR_LOG_PROB] == 0.0


@executions()
@pytest.mark.parametrize(
    "space, expected",
    [("discrete", -np.log(5)), ("multidiscrete", -np.log(12)), ("box", -2 * np.log(2.0))],
)
@pytest.mark.parametrize("make", ["bug", "random_answer"])
def test_buggy_actor_and_random_answer_can_report_the_true_log_prob(X, make, space, expected):
    def wrap(env, **kwargs):
        return X.w.BuggyActor(env, p=1.0, bug="random", **kwargs) if make == "bug" else X.w.RandomAnswer(env, p=1.0, **kwargs)

    env = wrap(X.make(ToyEnv, space), reported_log_prob=None)
    env.reset(seed=0)
    assert all(info[BEHAVIOR_LOG_PROB] == pytest.approx(expected) for info in X.step(env, SPACES[space].sample()))
    env = wrap(X.make(ToyEnv, space))
    env.reset(seed=0)
    assert all(info[BEHAVIOR_LOG_PROB] == 0.0 for info in X.step(env, SPACES[space].sample()))
    if make == "bug":
        env = X.w.BuggyActor(X.make(ToyEnv, space), p=1.0, bug="landmine", reported_log_prob=None)
        env.reset(seed=0)
        assert all(info[BEHAVIOR_LOG_PROB] == 0.0 for info in X.step(env, SPACES[space].sample()))


@executions()
@pytest.mark.parametrize("make", ["bug", "random_answer"])
def test_random_actions_cover_the_space(X, make):
    env = X.make(ToyEnv, "multidiscrete")
    env = X.w.BuggyActor(env, p=1.0, bug="random") if make == "bug" else X.w.RandomAnswer(env, p=1.0)
    seen = {tuple(s["info"][EXECUTED_ACTION]) for s in X.steps(env, 0, 500)}
    assert seen == {(i, j) for i in range(3) for j in range(4)}


@executions()
@pytest.mark.parametrize("space", sorted(SPACES))
def test_discovery_executes_the_optimal_action_and_gets_its_reward(X, space):
    env = X.w.RareDiscovery(X.make(ToyEnv, space), p=1.0)
    for s in X.steps(env, 1, 100):
        assert s["reward"] == 1.0 and s["info"][BEHAVIOR_LOG_PROB] == 0.0


@executions()
def test_discovery_with_an_oracle(X):
    # np.full(shape[:-1]) answers one observation with one action, and a batch with a batch (as SB3's predict does)
    env = X.w.RareDiscovery(X.make(ToyEnv, "discrete"), p=1.0, oracle=lambda obs: np.full(np.shape(obs)[:-1], 4), reported_log_prob=-0.5)
    for s in X.steps(env, 1, 20):
        assert s["info"][EXECUTED_ACTION] == 4 and s["info"][BEHAVIOR_LOG_PROB] == -0.5


@executions()
@pytest.mark.parametrize("mode", ["coin", "gaussian", "sign_flip"])
def test_reward_corruption_keeps_the_clean_reward_exactly_when_changed(X, mode):
    clean = X.steps(X.make(ToyEnv, "discrete"), 2, 400)
    dirty = X.steps(X.w.RewardCorruption(X.make(ToyEnv, "discrete"), p=0.5, mode=mode), 2, 400)
    for c, d in zip(clean, dirty, strict=True):
        changed = d["reward"] != c["reward"]
        assert (TRUE_REWARD in d["info"]) == changed
        if changed:
            assert d["info"][TRUE_REWARD] == c["reward"] and fired(d, "reward_corruption")
        if mode == "coin" and fired(d, "reward_corruption"):
            assert d["reward"] in (0.0, 1.0)


@executions()
def test_reward_corruption_hits_discoveries_unless_asked_to_spare_them(X):
    """The reference's coin (bernoulli_noise_wrapper.py) is independent of the injections: it hits discoveries too."""
    hit = X.w.apply_frictions(X.make(ToyEnv, "discrete"), discovery=1.0, reward_corruption={"p": 1.0, "mode": "sign_flip"})
    assert hit.spare_discoveries is False
    assert all(s["reward"] == -1.0 and s["info"][TRUE_REWARD] == 1.0 for s in X.steps(hit, 0, 50))
    spared = X.w.RewardCorruption(X.w.RareDiscovery(X.make(ToyEnv, "discrete"), p=1.0), p=1.0, mode="sign_flip", spare_discoveries=True)
    assert all(s["reward"] == 1.0 and TRUE_REWARD not in s["info"] for s in X.steps(spared, 0, 50))


@executions()
def test_reward_coin_rate_on_discovery_steps_is_p_by_default(X):
    """With p=0.3 the coin hits discovery steps at rate 0.3 (binomial interval), as any other step."""
    env = X.w.apply_frictions(X.make(ToyEnv, "discrete"), discovery=1.0, reward_corruption={"p": 0.3, "mode": "sign_flip"})
    steps = X.steps(env, 5, 2000)
    hits = sum(fired(s, "reward_corruption") for s in steps)
    assert all(fired(s, "discovery") for s in steps)
    lo, hi = binomial_interval(len(steps), 0.3)
    assert lo <= hits <= hi, (hits, len(steps))


@executions()
def test_stacked_corruptions_keep_the_clean_reward(X):
    env = X.w.RewardCorruption(X.w.RewardCorruption(X.make(ToyEnv, "discrete"), p=1.0, mode="gaussian"), p=1.0, mode="sign_flip")
    clean = X.steps(X.make(ToyEnv, "discrete"), 0, 40)
    for c, d in zip(clean, X.steps(env, 0, 40), strict=True):
        assert d["info"][TRUE_REWARD] == c["reward"] and d["info"][FRICTIONS] == ["reward_corruption"] * 2


# ---------------------------------------------------------------- apply_frictions


def test_canonical_order_is_the_registry_order():
    from dg_envs.wrappers.stack import REGISTRY

    assert CANONICAL_ORDER == ("discovery", "random_answer", "bug", "mismatch", "stale", "reward_corruption")
    assert tuple(REGISTRY) == CANONICAL_ORDER
    for name, friction in REGISTRY.items():
        assert friction.spec.name == name
        assert friction.vector_wrapper.__name__ == friction.env_wrapper.__name__
        assert friction.vector_wrapper.spec_class is friction.env_wrapper.spec_class is friction.spec


@executions()
def test_apply_frictions_canonical_order_and_numbers(X):
    env = X.w.apply_frictions(X.make(ToyEnv, "discrete"), stale=4, bug=0.2, reward_corruption=0.1, discovery=0.01, random_answer=0.05)
    layers = []
    while isinstance(env, (gym.Wrapper, gym.vector.VectorWrapper)):
        layers.append(env)
        env = env.env
    w = X.w
    assert [type(x) for x in layers] == [w.RewardCorruption, w.StaleActor, w.BuggyActor, w.RandomAnswer, w.RareDiscovery]
    assert layers[1].lag == 4 and layers[2].p == 0.2 and layers[0].p == 0.1 and layers[4].p == 0.01 and layers[3].p == 0.05


@executions()
def test_apply_frictions_merges_stale_and_mismatch_into_one_actor(X):
    env = X.w.apply_frictions(X.make(ToyEnv, "discrete"), stale={"lag": 2, "random_lag": True}, mismatch=0.5)
    assert type(env) is X.w.MismatchedActor and not isinstance(env.env, (gym.Wrapper, gym.vector.VectorWrapper))
    assert (env.lag, env.random_lag, env.noise_std) == (2, True, 0.5)
    env.push_policy_snapshot(ConstantActor(1))
    env.reset(seed=0)
    assert all(info[FRICTIONS] == ["mismatch", "stale"] for info in X.step(env, 0))
    with pytest.raises(ValueError, match="p differs"):
        X.w.apply_frictions(X.make(ToyEnv, "discrete"), stale={"lag": 2, "p": 0.5}, mismatch={"noise_std": 1.0, "p": 0.2})


@executions()
def test_apply_frictions_with_nothing_returns_the_env(X):
    env = X.make(ToyEnv, "discrete")
    assert X.w.apply_frictions(env) is env


# ---------------------------------------------------------------- validation


@executions()
@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda W, e: W.BuggyActor(e, p=1.5), "p"),
        (lambda W, e: W.BuggyActor(e, p=-0.1), "p"),
        (lambda W, e: W.BuggyActor(e, p=float("nan")), "p"),
        (lambda W, e: W.RewardCorruption(e, p="0.5"), "p"),
        (lambda W, e: W.RandomAnswer(e, p=2), "p"),
        (lambda W, e: W.RandomAnswer(e, p=0.1, reported_log_prob=0.5), "reported_log_prob"),
        (lambda W, e: W.StaleActor(e, lag=-1), "lag"),
        (lambda W, e: W.StaleActor(e, lag=1.5), "lag"),
        (lambda W, e: W.StaleActor(e, lag=1, per="batch"), "per"),
        (lambda W, e: W.MismatchedActor(e, noise_std=-1.0), "noise_std"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, mode="flip"), "mode"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, per="episodes"), "per"),
        (lambda W, e: W.BuggyActor(e, p=0.1, bug="crash"), "bug"),
        (lambda W, e: W.BuggyActor(e, p=0.1, landmine=7), "landmine"),
        (lambda W, e: W.BuggyActor(e, p=0.1, bug=lambda o, a, r: a, reported_log_prob=None), "reported_log_prob"),
        (lambda W, e: W.BuggyActor(e, p=0.1, reported_log_prob=0.5), "reported_log_prob"),
        (lambda W, e: W.RareDiscovery(e, p=0.1, oracle=3), "oracle"),
        (lambda W, e: W.apply_frictions(e, bug="often"), "bug"),
        (lambda W, e: W.apply_frictions(e, random_answer="often"), "random_answer"),
        # every constructor argument goes through the shared checks (dg_envs.validation)
        (lambda W, e: W.BuggyActor(e, p=True), "p"),
        (lambda W, e: W.BuggyActor(e, p=0.1, per=None), "per"),
        (lambda W, e: W.StaleActor(e, lag=True), "lag"),
        (lambda W, e: W.StaleActor(e, lag=1, random_lag="yes"), "random_lag"),
        (lambda W, e: W.StaleActor(e, lag=1, random_lag=1), "random_lag"),
        (lambda W, e: W.StaleActor(e, lag=1, noise_std=float("inf")), "noise_std"),
        (lambda W, e: W.MismatchedActor(e, noise_std=float("nan")), "noise_std"),
        (lambda W, e: W.MismatchedActor(e, noise_std=0.1, random_lag=None), "random_lag"),
        (lambda W, e: W.MismatchedActor(e, noise_std=0.1, lag=-2), "lag"),
        (lambda W, e: W.StaleActor(e, lag=1, random_lag="episode"), "random_lag must be True, False or 'update'"),
        (lambda W, e: W.MismatchedActor(e, noise_std=0.1, noise="fixed"), "noise must be one of 'per_step', 'fixed_bias'"),
        (lambda W, e: W.StaleActor(e, lag=1, noise=None), "noise"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, spare_discoveries="no"), "spare_discoveries"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, spare_discoveries=0), "spare_discoveries"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, terminal_only=1), "terminal_only"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, mode=None), "mode"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, low=float("nan")), "low"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, high="1"), "high"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, low=2.0), "low must be <= high"),
        (lambda W, e: W.RewardCorruption(e, p=0.1, mode="gaussian", noise_std=-0.5), "noise_std"),
        (lambda W, e: W.BuggyActor(e, p=0.1, landmine="0"), "landmine"),
        (lambda W, e: W.BuggyActor(e, p=0.1, landmine=1.5), "landmine"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(X, make, argument):
    with pytest.raises(ValueError, match=argument) as error:
        make(X.w, X.make(ToyEnv, "discrete"))
    if argument in ("per", "mode", "bug"):
        assert "one of" in str(error.value) or "dict" in str(error.value)


@executions()
def test_discovery_without_an_optimal_action_asks_for_an_oracle(X):
    with pytest.raises(ValueError, match="^oracle: this env has no optimal_action"):
        X.w.RareDiscovery(X.make(gym.make, "CartPole-v1"), p=0.1)


@executions()
def test_numpy_scalar_arguments_are_not_rejected_as_invalid(X):
    """NumPy scalars are numbers (and np.bool_ a bool) everywhere; the stored values are Python's."""
    w, f32, i64, yes = X.w, np.float32(0.25), np.int64(2), np.bool_(True)
    bug = w.BuggyActor(X.make(ToyEnv, "discrete"), p=f32, reported_log_prob=np.float32(-0.5))
    assert (bug.p, bug.reported_log_prob) == (0.25, -0.5) and type(bug.p) is float
    discovery = w.RareDiscovery(X.make(ToyEnv, "discrete"), p=f32, reported_log_prob=np.float64(-1.0))
    assert discovery.reported_log_prob == -1.0
    stale = w.StaleActor(X.make(ToyEnv, "discrete"), lag=i64, random_lag=yes, p=f32, noise_std=f32)
    assert (stale.lag, stale.random_lag, stale.noise_std) == (2, True, 0.25) and type(stale.random_lag) is bool
    mismatch = w.MismatchedActor(X.make(ToyEnv, "discrete"), noise_std=np.float32(1.5), lag=np.int32(1))
    assert (mismatch.noise_std, mismatch.lag) == (1.5, 1)
    corruption = w.RewardCorruption(
        X.make(ToyEnv, "discrete"), p=f32, low=np.float32(-1.0), high=np.int64(2), noise_std=f32, spare_discoveries=np.bool_(False),
        terminal_only=yes,
    )
    assert (corruption.low, corruption.high, corruption.noise_std) == (-1.0, 2.0, 0.25)
    assert corruption.spare_discoveries is False and corruption.terminal_only is True
    assert int(w.BuggyActor(X.make(ToyEnv, "discrete"), p=0.1, landmine=np.int32(3)).landmine) == 3


@executions()
@pytest.mark.parametrize("value", [0.7, float("nan"), float("inf"), -float("inf"), True, "-1"])
@pytest.mark.parametrize("make", ["BuggyActor", "RareDiscovery", "RandomAnswer"])
def test_invalid_reported_log_prob_is_rejected_alike_by_bug_discovery_and_random_answer(X, make, value):
    """One check for all: finite, and <= 0 for discrete actions (a Box log-density may be positive)."""
    make = getattr(X.w, make)
    with pytest.raises(ValueError, match="reported_log_prob must be a finite real number <= 0.0"):
        make(X.make(ToyEnv, "discrete"), p=0.1, reported_log_prob=value)
    if value == 0.7:
        assert make(X.make(ToyEnv, "box"), p=0.1, reported_log_prob=value).reported_log_prob == 0.7
    else:
        with pytest.raises(ValueError, match="reported_log_prob must be a finite real number"):
            make(X.make(ToyEnv, "box"), p=0.1, reported_log_prob=value)


def _bad_replacements():
    """(space, a replacement action that is not in it): out of range, wrong type, shape, non-finite."""
    return [
        ("discrete", 42),
        ("discrete", 1),  # Discrete(4, start=2) below: 1 is under start
        ("discrete", 1.5),
        ("discrete", True),
        ("discrete", "2"),
        ("discrete", None),
        ("discrete", [1, 2]),
        ("multidiscrete", [0, 9]),
        ("multidiscrete", [0]),
        ("multidiscrete", [0.5, 1.0]),
        ("box", [np.nan, 0.0]),
        ("box", [np.inf, 0.0]),
        ("box", [0.0, 0.0, 0.0]),
        ("box", [[0.0], [0.0]]),
        ("box", "ab"),
    ]


@executions()
@pytest.mark.parametrize("space, action", _bad_replacements())
@pytest.mark.parametrize("friction", ["oracle", "bug"])
def test_invalid_replacement_action_raises_before_the_env_steps(X, friction, space, action):
    """A user callable's action outside the action space fails at that step, naming the callable and the space.

    The vector wrapper calls it on a batch: here it answers the bad action for every row."""
    env = X.make(ToyEnv, "discrete_start" if action == 1 else space)
    single_space = getattr(env, "single_action_space", env.action_space)
    if friction == "oracle":
        wrapped = X.w.RareDiscovery(env, p=1.0, oracle=X.batch(lambda obs: action))
    else:
        wrapped = X.w.BuggyActor(env, p=1.0, bug=X.batch(lambda obs, a, rng: action))
    wrapped.reset(seed=0)
    with pytest.raises(ValueError, match=f"^{friction} returned .*{re.escape(str(single_space))}"):
        X.step(wrapped, single_space.sample())
    assert all(sub.last_action is None for sub in X.sub_envs(env))  # the inner env never saw it


def test_rare_discovery_rejects_bad_oracle_action_on_mnist():
    """The reported case: an out-of-range class used to be recorded, and training failed later inside torch."""
    env = RareDiscovery(gym.make("dg_envs/MNISTBandit-v0"), p=1.0, oracle=lambda obs: 42)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"oracle returned 42, which is not an action of Discrete\(10\)"):
        env.step(0)


@executions()
def test_box_replacement_may_leave_the_bounds(X):
    """A Box oracle / bug action is reported as returned and executed clipped; the check is not a bounds check."""
    env = X.make(ToyEnv, "box")
    wrapped = X.w.RareDiscovery(env, p=1.0, oracle=X.batch(lambda obs: np.array([5.0, -0.5])))
    wrapped.reset(seed=0)
    for info, sub in zip(X.step(wrapped, np.zeros(2, dtype=np.float32)), X.sub_envs(env), strict=True):
        np.testing.assert_array_equal(info[EXECUTED_ACTION], [5.0, -0.5])
        np.testing.assert_array_equal(sub.last_action, [1.0, -0.5])


def test_per_env_replacement_may_be_a_batch_of_one():
    env = ToyEnv("box")
    wrapped = RareDiscovery(env, p=1.0, oracle=lambda obs: np.array([[5.0, -0.5]]))
    wrapped.reset(seed=0)
    np.testing.assert_array_equal(wrapped.step(np.zeros(2, dtype=np.float32))[4][EXECUTED_ACTION], [5.0, -0.5])
    env = ToyEnv("multidiscrete")
    wrapped = BuggyActor(env, p=1.0, bug=lambda obs, a, rng: [[2, 3]])
    wrapped.reset(seed=0)
    assert wrapped.step(np.zeros(2, dtype=np.int64))[4][EXECUTED_ACTION].tolist() == [2, 3]


@executions()
def test_per_error_lists_accepted_values(X):
    with pytest.raises(ValueError, match="'step', 'episode'"):
        X.w.BuggyActor(X.make(ToyEnv, "discrete"), p=0.1, per="batch")


@executions()
def test_landmine_outside_a_box_is_rejected(X):
    with pytest.raises(ValueError, match="landmine"):
        X.w.BuggyActor(X.make(ToyEnv, "box"), p=0.1, landmine=[2.0, 0.0])
    with pytest.raises(ValueError, match="landmine"):
        X.w.BuggyActor(X.make(ToyEnv, "multidiscrete"), p=0.1, landmine=[0, 9])


@executions()
def test_unsupported_action_space_is_rejected(X):
    with pytest.raises(ValueError, match="action_space"):
        X.w.BuggyActor(X.make(ToyEnv, spaces.MultiBinary(3)), p=0.1)


@executions()
def test_constructor_args_are_recorded(X):
    env = X.w.BuggyActor(X.make(ToyEnv, "discrete"), p=0.25, bug="random", per="episode")
    assert env._saved_kwargs == {"p": 0.25, "bug": "random", "landmine": None, "reported_log_prob": 0.0, "per": "episode"}
    assert X.w.RandomAnswer(X.make(ToyEnv, "discrete"), p=0.5)._saved_kwargs == {"p": 0.5, "per": "step", "reported_log_prob": 0.0}


def test_one_signature_from_the_spec():
    import inspect

    from dg_envs.wrappers import vector

    for name in ("StaleActor", "MismatchedActor", "BuggyActor", "RandomAnswer", "RewardCorruption", "RareDiscovery"):
        per_env, batched = getattr(__import__("dg_envs.wrappers", fromlist=[name]), name), getattr(vector, name)
        assert inspect.signature(per_env) == inspect.signature(batched)
        assert list(inspect.signature(per_env).parameters)[0] == "env"
    assert str(inspect.signature(StaleActor)).startswith("(env, lag: 'int', random_lag: 'bool | str' = False")
    assert inspect.signature(MismatchedActor).parameters["noise_std"].default is inspect.Parameter.empty


# ---------------------------------------------------------------- check_env and pickling on real envs

ENV_IDS = [
    "CartPole-v1",
    "Pendulum-v1",
    *MUJOCO_IDS,
    "dg_envs/KArmedBandit-v0",
    "dg_envs/ContextualBandit-v0",
    "dg_envs/MNISTBandit-v0",
    "dg_envs/TokenReversal-v0",
]
WRAPPER_NAMES = ["stale", "mismatch", "bug_landmine", "bug_random", "random_answer", "reward_coin", "reward_gaussian", "discovery", "all"]


def wrap(name: str, env: gym.Env, p: float = 0.5, per: str = "step") -> gym.Env:
    """Wrap ``env``; discovery uses the env's optimal_action when it has one, else a policy oracle."""
    import dg_envs.wrappers as W

    try:
        env.get_wrapper_attr("optimal_action")
        oracle = None
    except AttributeError:
        oracle = PolicyOracle(sb3_policy(env.observation_space, env.action_space))
    if name == "all":
        wrapped = apply_frictions(
            env,
            stale={"lag": 2, "random_lag": True, "p": p, "per": per},
            mismatch={"noise_std": 0.5},
            bug={"p": p, "per": per},
            random_answer={"p": p / 5, "per": per},
            reward_corruption={"p": p, "per": per},
            discovery={"p": p / 5, "oracle": oracle, "per": per},
        )
        assert push_policy_snapshot(wrapped, policy_actor(env)) == 1  # found below RewardCorruption
        return wrapped
    if name == "discovery":
        return RareDiscovery(env, p, oracle=oracle, per=per)
    return WRAPPERS[name][0](W, env, p, per)


def _checker_warnings(env: gym.Env) -> set[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True, skip_close_check=True)
    return {str(w.message) for w in caught if "different from the unwrapped" not in str(w.message)}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_and_pickle_every_wrapper(env_id):
    """check_env passes with no warning beyond the raw env's own, and a pickled copy replays the same steps."""
    baseline = _checker_warnings(gym.make(env_id).unwrapped)
    for name in WRAPPER_NAMES:
        for per in ("step", "episode"):
            env = wrap(name, gym.make(env_id), per=per)
            assert _checker_warnings(env) <= baseline, (name, per)
            clone = pickle.loads(pickle.dumps(env))
            a, b = rollout(env, 4, 12), rollout(clone, 4, 12)
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x["obs"], y["obs"])
                assert x["reward"] == y["reward"], (name, per)
                assert x["info"].get(FRICTIONS) == y["info"].get(FRICTIONS)


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_sb3_check_env_every_wrapper_on_mujoco(env_id):
    """SB3's checker too, on every MuJoCo task (no warning beyond the raw env's own), and the
    bug's landmine at full torque as the experiment uses it."""
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    def sb3_warnings(env):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sb3_check_env(env, warn=True, skip_render_check=True)
        return {str(w.message) for w in caught}

    baseline = sb3_warnings(gym.make(env_id))
    for name in WRAPPER_NAMES:
        assert sb3_warnings(wrap(name, gym.make(env_id))) <= baseline, name
    env = BuggyActor(gym.make(env_id), p=1.0, landmine=gym.make(env_id).action_space.high)
    sb3_check_env(env, skip_render_check=True)
    env.reset(seed=0)
    np.testing.assert_array_equal(env.step(env.action_space.low)[4]["executed_action"], env.action_space.high)


@executions()
def test_two_wrappers_of_the_same_class_draw_different_streams(X):
    env = X.w.BuggyActor(X.w.BuggyActor(X.make(ToyEnv, "discrete"), p=0.5), p=0.5)
    env.reset(seed=0)
    assert env.rng.random(4).tolist() != env.env.rng.random(4).tolist()


class _Ranged(ToyEnv):
    reward_range = (-2.0, 3.0)


@executions()
def test_coin_bounds_default_to_a_finite_reward_range_else_0_1(X):
    corruption = X.w.RewardCorruption(X.make(_Ranged), p=0.1)
    assert (corruption.low, corruption.high) == (-2.0, 3.0)
    corruption = X.w.RewardCorruption(X.make(ToyEnv), p=0.1)
    assert (corruption.low, corruption.high) == (0.0, 1.0)

    def unbounded():
        env = _Ranged()
        env.reward_range = (-float("inf"), float("inf"))
        return env

    assert X.w.RewardCorruption(X.make(unbounded), p=0.1).high == 1.0
    assert X.w.RewardCorruption(X.make(_Ranged), p=0.1, low=5.0, high=6.0).low == 5.0
    rewards = {s["reward"] for s in X.steps(X.w.RewardCorruption(X.make(_Ranged), p=1.0), 0, 200)}
    assert rewards == {-2.0, 3.0}


@executions()
@pytest.mark.parametrize("space", ["discrete", "discrete_start"])
def test_buggy_random_discrete_is_uniform(X, space):
    env = X.w.BuggyActor(X.make(ToyEnv, space), p=1.0, bug="random")
    # 30000 draws: with seed 0 the generator's own first 6000 uniforms put 1618 below 0.25
    # (3.4 sd above 1500), so a smaller sample tests that seed's luck, not the mapping.
    executed = [int(s["info"][EXECUTED_ACTION]) for s in X.steps(env, 0, 30000)]
    single = SPACES[space]
    n = single.n
    lo, hi = binomial_interval(len(executed), 1 / n, level=1 - 0.01 / n)  # Bonferroni over the n counts
    for k in range(single.start, single.start + n):
        assert lo <= executed.count(k) <= hi, (k, executed.count(k), lo, hi)


def test_buggy_random_discrete_maps_uniforms_to_every_action():
    env = BuggyActor(ToyEnv("discrete_start"), p=1.0, bug="random")
    env.reset(seed=0)
    draws = [0.0, 0.2499, 0.25, 0.5, 0.75, 0.9999999]
    env._uniforms = list(reversed(draws))  # popped from the end
    executed = [int(env.step(2)[4][EXECUTED_ACTION]) for _ in draws]
    assert executed == [2, 2, 3, 4, 5, 5]


@executions()
def test_reward_corruption_terminal_only_touches_only_the_last_reward(X):
    """Token reversal pays at the end: per-episode corruption with terminal_only leaves the zero
    intermediate rewards alone and corrupts exactly the final one (Gaussian noise: changes it a.s.)."""
    env = X.w.RewardCorruption(
        X.make(gym.make, "dg_envs/TokenReversal-v0", length=4), p=1.0, mode="gaussian", noise_std=1.0, per="episode",
        terminal_only=True,
    )
    env.reset(seed=0)
    correct = (lambda: env.get_wrapper_attr("optimal_action")()) if not X.vector else (
        lambda: [sub.get_wrapper_attr("optimal_action")() for sub in env.unwrapped.envs])
    for step in range(4):
        obs, reward, terminated, truncated, info = env.step(correct())
        if step < 3:
            assert np.all(reward == 0.0) and "true_reward" not in info and "frictions" not in info
    assert np.all(terminated) and np.all(info["true_reward"] == 1.0) and np.all(reward != 1.0)
    frictions = list(info["frictions"]) if X.vector else [info["frictions"]]
    assert [list(names) for names in frictions] == [["reward_corruption"]] * X.num_envs


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_reward_corruption_terminal_only_must_be_bool(execution):
    X = Execution(execution)
    with pytest.raises(ValueError, match="terminal_only"):
        X.w.RewardCorruption(X.make(gym.make, "CartPole-v1"), p=0.5, terminal_only="yes")
