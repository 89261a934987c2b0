"""Tests of the batched VecEnv actors: same protocol as the per-env wrappers, one forward per step."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

sys.path.insert(0, os.path.dirname(__file__))
from _wrappers_test_utils import SPACES, ConstantActor, ToyEnv, binomial_interval, sb3_policy  # noqa: E402

from dg_envs.wrappers import BuggyActor, SB3PolicyActor, StaleActor, push_policy_snapshot  # noqa: E402
from dg_envs.wrappers.protocol import ACTOR_LAG, BEHAVIOR_LOG_PROB, EXECUTED_ACTION, FRICTIONS  # noqa: E402
from dg_envs.wrappers.vector import VecMismatchedActor, VecStaleActor  # noqa: E402


class CountingActor:
    """Returns ``action`` with certainty and counts its calls and rows."""

    def __init__(self, action):
        self.action, self.calls, self.rows = action, 0, 0

    def __call__(self, obs, rng, noise_std=0.0):
        n = len(obs)
        self.calls += 1
        self.rows += n
        return np.stack([np.asarray(self.action)] * n), np.zeros(n)


def _venv(space="discrete", n=4, wrapper=None):
    return DummyVecEnv([(lambda: wrapper(ToyEnv(space)) if wrapper else ToyEnv(space)) for _ in range(n)])


def _actions(venv):
    return np.stack([venv.action_space.sample() for _ in range(venv.num_envs)])


def test_no_snapshot_passes_the_learner_actions_through():
    venv = VecStaleActor(_venv(), lag=1)
    venv.reset()
    _, _, _, infos = venv.step(_actions(venv))
    assert all(EXECUTED_ACTION not in info for info in infos)


def test_lag_semantics_and_one_forward_pass_per_step():
    venv = VecStaleActor(_venv(n=4), lag=2)
    snapshots = [CountingActor(v) for v in (0, 1, 2, 3, 4)]
    venv.reset()
    for k, snapshot in enumerate(snapshots):
        assert push_policy_snapshot(venv, snapshot) == 4
        _, _, _, infos = venv.step(_actions(venv))
        expected = max(0, k - 2)  # the snapshot 2 pushes old, else the oldest held
        assert [info[EXECUTED_ACTION] for info in infos] == [expected] * 4
        assert [info[ACTOR_LAG] for info in infos] == [min(k, 2)] * 4
        assert all(info[FRICTIONS] == ["stale"] and info[BEHAVIOR_LOG_PROB] == 0.0 for info in infos)
        assert [s.calls for s in snapshots][expected] >= 1
    assert sum(s.calls for s in snapshots) == 5 and sum(s.rows for s in snapshots) == 20  # batched


@pytest.mark.parametrize("space", sorted(SPACES))
def test_executed_action_reaches_the_env_in_every_space(space):
    venv = VecStaleActor(_venv(space, n=3), lag=0, noise_std=0.5)
    policy = sb3_policy(venv.observation_space, venv.action_space)
    push_policy_snapshot(venv, policy)
    venv.reset()
    for _ in range(20):
        _, _, _, infos = venv.step(_actions(venv))
        received = venv.venv.get_attr("last_action")
        for info, got in zip(infos, received, strict=True):
            executed = info[EXECUTED_ACTION]
            if space == "box":
                executed = np.clip(executed, -1.0, 1.0)
            np.testing.assert_array_equal(np.asarray(got), np.asarray(executed))
            assert info[FRICTIONS] == ["stale", "mismatch"] and info[BEHAVIOR_LOG_PROB] < 5.0


def test_inner_per_env_replacement_wins():
    venv = VecStaleActor(_venv(n=2, wrapper=lambda e: BuggyActor(e, p=1.0, landmine=3)), lag=1)
    push_policy_snapshot(venv, ConstantActor(1))
    venv.reset()
    _, _, _, infos = venv.step(_actions(venv))
    assert all(info[EXECUTED_ACTION] == 3 and info[FRICTIONS] == ["bug", "stale"] for info in infos)
    assert all(ACTOR_LAG not in info for info in infos)  # the stale actor's action did not run


def test_push_reaches_a_wrapper_under_vec_monitor_and_per_env_actors_below():
    from dg_envs.wrappers import StaleActor

    inner = _venv(n=2, wrapper=lambda e: StaleActor(e, lag=0))
    venv = VecMonitor(VecStaleActor(inner, lag=1))
    assert push_policy_snapshot(venv, ConstantActor(2)) == 2
    assert len(venv.venv.store) == 1 and inner.get_attr("snapshots")[0].num_updates == 1


def test_mismatch_rate_is_binomial_per_step_and_held_per_episode():
    venv = VecMismatchedActor(_venv(n=4), noise_std=1.0, p=0.3)
    venv.seed(3)
    push_policy_snapshot(venv, ConstantActor(0))
    venv.reset()
    fired = 0
    for _ in range(500):
        _, _, _, infos = venv.step(_actions(venv))
        fired += sum(EXECUTED_ACTION in info for info in infos)
    lo, hi = binomial_interval(2000, 0.3)
    assert lo <= fired <= hi

    venv = VecMismatchedActor(_venv(n=4), noise_std=1.0, p=0.3, per="episode")
    venv.seed(3)
    push_policy_snapshot(venv, ConstantActor(0))
    venv.reset()
    state = [None] * 4
    for _ in range(300):
        _, _, dones, infos = venv.step(_actions(venv))
        for i, info in enumerate(infos):
            now = EXECUTED_ACTION in info
            assert state[i] is None or state[i] == now, "switched inside an episode"
            state[i] = None if dones[i] else now


def test_seeding_reproduces_the_draws():
    def run():
        venv = VecStaleActor(_venv(n=3), lag=3, random_lag=True)
        venv.seed(11)
        for v in range(4):
            push_policy_snapshot(venv, ConstantActor(v % 5))
        venv.reset()
        return [[info[ACTOR_LAG] for info in venv.step(np.zeros(3, dtype=np.int64))[3]] for _ in range(30)]

    a, b = run(), run()
    assert a == b and len({lag for row in a for lag in row}) == 4


def test_matches_the_per_env_actor_distribution_with_a_real_policy():
    """Both paths give SB3's own log-probs for the actions they executed."""
    import torch as th

    venv = VecStaleActor(_venv(n=8), lag=0, noise_std=0.0)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=8, device="cpu", seed=0)
    push_policy_snapshot(venv, model.policy)
    obs = venv.reset()
    _, _, _, infos = venv.step(_actions(venv))
    actions = np.array([info[EXECUTED_ACTION] for info in infos])
    with th.no_grad():
        _, log_prob, _ = model.policy.evaluate_actions(th.as_tensor(obs), th.as_tensor(actions))
    np.testing.assert_allclose([info[BEHAVIOR_LOG_PROB] for info in infos], log_prob.numpy(), atol=1e-5)


def test_subproc_vec_env_keeps_the_snapshot_in_the_main_process():
    inner = SubprocVecEnv([lambda: ToyEnv("discrete")] * 2, start_method="forkserver")
    try:
        venv = VecStaleActor(inner, lag=0, noise_std=0.1)
        assert push_policy_snapshot(venv, SB3PolicyActor(sb3_policy(venv.observation_space, venv.action_space))) == 2
        venv.reset()
        _, _, _, infos = venv.step(np.zeros(2, dtype=np.int64))
        assert all(info[FRICTIONS] == ["stale", "mismatch"] for info in infos)
    finally:
        inner.close()


@pytest.mark.parametrize(
    "kwargs, argument",
    [({"lag": -1}, "lag"), ({"lag": 1, "per": "batch"}, "per"), ({"lag": 1, "noise_std": -1.0}, "noise_std"), ({"lag": 1, "max_snapshots": 0}, "max_snapshots")],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        VecStaleActor(_venv(n=1), **kwargs)
    with pytest.raises(ValueError, match="p must"):
        VecMismatchedActor(_venv(n=1), p=2.0)


def test_our_algorithms_and_the_callback_feed_a_vec_stale_actor():
    """DGPPO pushes at learn start and after every train(); SnapshotCallback does the same for PPO."""
    from stable_baselines3.common.env_util import make_vec_env

    from dg_envs.algos import DGPPO
    from dg_envs.wrappers import SnapshotCallback

    venv = VecStaleActor(make_vec_env("CartPole-v1", n_envs=2, seed=0), lag=2)
    model = DGPPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, device="cpu", seed=0)
    model.learn(16 * 2 * 3)
    assert venv.store.num_updates == 4 and model.relabelled_fraction == 1.0
    venv = VecStaleActor(make_vec_env("CartPole-v1", n_envs=2, seed=0), lag=2)
    callback = SnapshotCallback()
    PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, device="cpu", seed=0).learn(16 * 2 * 3, callback=callback)
    assert callback.num_pushes == venv.store.num_updates == 3


def test_invalid_venv_raises_type_error_naming_venv():
    """A single Gymnasium env is not a VecEnv: a TypeError that says so (it used to be an AttributeError)."""
    import gymnasium as gym

    with pytest.raises(TypeError, match="venv must be a Stable-Baselines3 VecEnv.*use StaleActor"):
        VecStaleActor(gym.make("CartPole-v1"), lag=1)
    with pytest.raises(TypeError, match="venv must be a Stable-Baselines3 VecEnv.*use MismatchedActor"):
        VecMismatchedActor(ToyEnv("discrete"), noise_std=0.1)


@pytest.mark.parametrize("lag, max_snapshots", [(5, 2), (5, 5), (0, 0), (1, 1.5), (1, True)])
def test_invalid_max_snapshots_that_would_cap_the_lag_is_rejected(lag, max_snapshots):
    """max_snapshots <= lag used to cap the lag silently: the snapshot ``lag`` updates old was never held."""
    with pytest.raises(ValueError, match="max_snapshots must be"):
        VecStaleActor(_venv(n=1), lag=lag, max_snapshots=max_snapshots)
    with pytest.raises(ValueError, match="max_snapshots must be"):
        VecMismatchedActor(_venv(n=1), noise_std=0.1, lag=lag, max_snapshots=max_snapshots)


def test_lag_is_never_capped_per_env_or_batched():
    """The per-env StaleActor keeps lag + 1 snapshots (it has no max_snapshots); both act with the one ``lag`` old."""
    per_env = _venv(n=2, wrapper=lambda env: StaleActor(env, lag=5))
    batched = VecStaleActor(_venv(n=2), lag=5, max_snapshots=np.int64(6))
    for venv in (per_env, batched):
        for k in range(8):
            push_policy_snapshot(venv, ConstantActor(k % 5))
        venv.reset()
        infos = venv.step(np.zeros(2, dtype=np.int64))[3]
        assert [(int(i[EXECUTED_ACTION]), i[ACTOR_LAG]) for i in infos] == [(2, 5), (2, 5)]


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"random_lag": "yes"}, "random_lag"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"lag": True}, "lag"),
        ({"per": None}, "per"),
        ({"p": float("nan")}, "p"),
        ({"p": True}, "p"),
    ],
)
def test_bad_input_goes_through_the_shared_checks(kwargs, argument):
    """The same checks as the per-env actors (one definition): the same messages."""
    with pytest.raises(ValueError, match=f"^{argument} must be"):
        VecMismatchedActor(_venv(n=1), **{"noise_std": 0.1, **kwargs})
    venv = VecMismatchedActor(_venv(n=1), noise_std=np.float32(0.5), p=np.float32(0.5), lag=np.int64(1), random_lag=np.bool_(True))
    assert (venv.noise_std, venv.p, venv.lag, venv.random_lag) == (0.5, 0.5, 1, True)


def test_vec_push_rejects_a_bad_policy_and_invalid_spaces():
    venv = VecStaleActor(_venv(n=2), lag=1)
    with pytest.raises(TypeError, match="policy must be a Stable-Baselines3 policy"):
        push_policy_snapshot(venv, "x")
    with pytest.raises(TypeError, match="actor must be a Stable-Baselines3 policy"):
        venv.push_policy_snapshot("x")
    policy = sb3_policy(venv.observation_space, SPACES["multidiscrete"])
    with pytest.raises(ValueError, match=r"policy was built for .*MultiDiscrete.*Discrete\(5\)"):
        push_policy_snapshot(venv, policy)
    assert len(venv.store) == 0


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_observation_raises_in_the_batched_actor(value):
    class NaNToy(ToyEnv):
        def _obs(self):
            return np.full_like(super()._obs(), value)

    venv = VecMismatchedActor(DummyVecEnv([NaNToy, ToyEnv]), noise_std=0.5)
    venv.reset()
    venv.step(np.zeros(2, dtype=np.int64))  # no snapshot yet: the actor does not act, nothing to check
    push_policy_snapshot(venv, SB3PolicyActor(sb3_policy(venv.observation_space, venv.action_space)))
    with pytest.raises(ValueError, match="observation given to the mismatch actor is non-finite"):
        venv.step(np.zeros(2, dtype=np.int64))
