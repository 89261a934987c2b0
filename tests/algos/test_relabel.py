"""Executed-action relabelling: the buffer holds what ran, with the rollout policy's log-prob."""

import os
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

sys.path.insert(0, os.path.dirname(__file__))
from _algos_test_utils import SMALL, AlwaysReplace  # noqa: E402

from dg_envs.algos import DGA2C, DGPPO, IWPG, PG, KondoA2C, KondoPPO, RelabelledA2C, RelabelledPPO  # noqa: E402
from dg_envs.algos.relabel import BehaviorRolloutBuffer, NonFiniteError, episode_ids  # noqa: E402
from dg_envs.vec_env import make_vec_env  # noqa: E402
from dg_envs.wrappers import apply_frictions  # noqa: E402

ALGOS = [DGA2C, DGPPO, KondoA2C, KondoPPO, PG, IWPG]


def collect(model, n_steps):
    """Run one collect_rollouts (no train) and return the buffer."""
    _, callback = model._setup_learn(n_steps, None)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_steps)
    return model.rollout_buffer


def rollout_policy_log_probs(model, buffer):
    obs = th.as_tensor(buffer.observations.reshape(-1, *buffer.obs_shape))
    actions = th.as_tensor(buffer.actions.reshape(-1)).long()
    with th.no_grad():
        _, lp, _ = model.policy.evaluate_actions(obs, actions)
    return lp.numpy().reshape(buffer.log_probs.shape)


def make_venv(wrapper, n_envs=2, cls=DummyVecEnv, **kwargs):
    return cls([lambda: wrapper(Monitor(gym.make("CartPole-v1"))) for _ in range(n_envs)], **kwargs)


@pytest.mark.parametrize("algo", [*ALGOS, RelabelledPPO])
def test_always_replaced_action_is_relabelled(algo):
    model = algo("MlpPolicy", make_venv(lambda e: AlwaysReplace(e, action=1, log_prob=0.0)), n_steps=16, **SMALL)
    buffer = collect(model, 16)
    assert (buffer.actions == 1).all()
    np.testing.assert_allclose(buffer.log_probs, rollout_policy_log_probs(model, buffer), atol=1e-6)
    assert (buffer.behavior_log_probs == 0.0).all()  # what the lying actor reported
    assert model.relabelled_fraction == 1.0


def test_only_replaced_entries_change():
    model = DGA2C("MlpPolicy", make_venv(lambda e: AlwaysReplace(e, action=1, log_prob=-0.25, p=0.5)), n_steps=32, **SMALL)
    buffer = collect(model, 32)
    replaced = buffer.behavior_log_probs == np.float32(-0.25)
    assert 0 < replaced.mean() < 1 and model.relabelled_fraction == replaced.mean()
    assert (buffer.actions[replaced] == 1).all()
    # Untouched entries keep the policy's own action and log-prob, and mu = pi there.
    np.testing.assert_array_equal(buffer.behavior_log_probs[~replaced], buffer.log_probs[~replaced])
    np.testing.assert_allclose(buffer.log_probs, rollout_policy_log_probs(model, buffer), atol=1e-6)


def test_vanilla_sb3_trains_on_the_policy_action():
    """The bug this module fixes: plain SB3 stores the sampled action, not the executed one."""
    model = A2C("MlpPolicy", make_venv(lambda e: AlwaysReplace(e, action=1)), n_steps=32, **SMALL)
    assert (collect(model, 32).actions == 0).any()


def test_box_actions_are_not_replaced_by_clipped_ones():
    env = DummyVecEnv([lambda: gym.make("MountainCarContinuous-v0")])
    model = DGPPO("MlpPolicy", env, n_steps=64, batch_size=64, **SMALL)
    buffer = collect(model, 64)
    assert (np.abs(buffer.actions) > 1.0).any()  # SB3 stores the unclipped Gaussian sample
    assert model.relabelled_fraction == 0.0


class StopAt(BaseCallback):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def _on_step(self):
        return self.n_calls < self.n


def test_early_stop_of_collect_rollouts():
    model = DGA2C("MlpPolicy", make_venv(lambda e: AlwaysReplace(e, action=1)), n_steps=16, **SMALL)
    model.learn(64, callback=StopAt(5))
    buffer = model.rollout_buffer
    assert buffer.pos == 4 and (buffer.actions[:4] == 1).all()


def test_subproc_vec_env():
    venv = make_venv(lambda e: AlwaysReplace(e, action=1), cls=SubprocVecEnv, start_method="fork")
    try:
        model = KondoPPO("MlpPolicy", venv, keep_fraction=0.5, n_steps=16, batch_size=32, n_epochs=1, **SMALL)
        buffer = collect(model, 16)
        assert (buffer.actions == 1).all()
        model.learn(32)
    finally:
        venv.close()


EXECUTIONS = ["env", "vector"]


def friction_venv(execution, frictions, n_envs=4, env_id="CartPole-v1"):
    """An SB3 VecEnv of ``env_id`` with ``frictions``: per-env wrappers in a DummyVecEnv, or the
    batched frictions around a Gymnasium vector env under the adapter (``dg_envs.vec_env``)."""
    if execution == "vector":
        return make_vec_env(env_id, n_envs=n_envs, seed=0, frictions=frictions)
    return make_venv(lambda e: apply_frictions(e, **frictions), n_envs=n_envs)


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize("algo", [DGPPO, KondoA2C, IWPG])
def test_buggy_actor_landmine_in_buffer(algo, execution):
    model = algo("MlpPolicy", friction_venv(execution, {"bug": 1.0}), n_steps=16, **SMALL)
    buffer = collect(model, 16)
    assert (buffer.actions == 0).all()  # CartPole's landmine: action 0
    np.testing.assert_allclose(buffer.log_probs, rollout_policy_log_probs(model, buffer), atol=1e-6)
    assert (buffer.log_probs < 0).all() and (buffer.behavior_log_probs == 0.0).all()  # the lie: certainty


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize("algo", ALGOS)
def test_stale_actor_gets_snapshots_without_a_callback(algo, execution):
    venv = friction_venv(execution, {"stale": 1}, n_envs=2)
    model = algo("MlpPolicy", venv, n_steps=16, **SMALL)
    model.learn(64)
    # one push reaches both per-env actors; the batched actor serves both sub-envs from one store
    assert model.snapshot_envs == 2
    assert model.relabelled_fraction == 1.0  # the stale actor acted on every step


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_stale_actor_is_relabelled_with_its_own_behaviour_log_probs(execution):
    model = KondoA2C("MlpPolicy", friction_venv(execution, {"stale": 1}, n_envs=2), keep_fraction=0.5, n_steps=16, **SMALL)
    model.learn(64)
    assert model.relabelled_fraction == 1.0
    buffer = model.rollout_buffer
    # Relabelled log-probs are the rollout policy's, behaviour log-probs the stale actor's own.
    assert not np.allclose(buffer.log_probs, buffer.behavior_log_probs)


class ThreeStepEnv(gym.Env):
    """Three steps per episode; reward 0, 0, ``last_reward``; the third observation is ``last_obs``."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, last_reward=0.0, last_obs=0.0):
        self.last_reward, self.last_obs, self.t = last_reward, last_obs, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full(2, self.last_obs if self.t == 2 else 0.0, np.float32)
        return obs, (self.last_reward if self.t == 3 else 0.0), self.t == 3, False, {}


ALL_ALGOS = [*ALGOS, RelabelledPPO, RelabelledA2C]


def _small(cls):
    ppo = issubclass(cls, PPO)
    return dict(n_steps=6, **({"batch_size": 6, "n_epochs": 1} if ppo else {}), **SMALL)


@pytest.mark.parametrize("cls", ALL_ALGOS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_reward_raises_before_weights_change(cls, bad):
    model = cls("MlpPolicy", DummyVecEnv([lambda: ThreeStepEnv(last_reward=bad)]), **_small(cls))
    before = [p.detach().clone() for p in model.policy.parameters()]
    with pytest.raises(NonFiniteError, match="non-finite reward .* rollout step 2, env 0"):
        model.learn(12)
    assert all(th.equal(a, b) for a, b in zip(before, model.policy.parameters()))


@pytest.mark.parametrize("cls", ALL_ALGOS, ids=lambda c: c.__name__)
def test_nan_observation_raises_naming_observation(cls):
    model = cls("MlpPolicy", DummyVecEnv([lambda: ThreeStepEnv(last_obs=np.nan)]), **_small(cls))
    before = [p.detach().clone() for p in model.policy.parameters()]
    with pytest.raises(NonFiniteError, match="non-finite observation in step 1 of the rollout .* env 0"):
        model.learn(12)
    assert all(th.equal(a, b) for a, b in zip(before, model.policy.parameters()))


def test_nonfinite_advantage_is_named_as_such():
    model = DGA2C("MlpPolicy", DummyVecEnv([ThreeStepEnv]), **_small(DGA2C))
    with th.no_grad():  # a critic that blew up: finite data, non-finite values
        model.policy.value_net.bias.fill_(np.inf)
    with pytest.raises(NonFiniteError, match="non-finite advantage"):
        model.learn(6)
def test_episode_ids_follow_the_unshuffled_rollout_order():
    """Entry i * n_steps + t is sub-env i's step t; a rollout that starts mid-episode starts an id."""
    starts = starts_for(4, 2, 2)  # two 2-step episodes per env
    np.testing.assert_array_equal(episode_ids(starts), [0, 0, 2, 2, 1, 1, 3, 3])
    np.testing.assert_array_equal(episode_ids(np.zeros((2, 1))), [0, 0])
    with pytest.raises(ValueError, match="episode_starts must have shape"):
        episode_ids(np.ones(3))


def starts_for(n_steps, n_envs, length):
    starts = np.zeros((n_steps, n_envs))
    starts[::length] = 1
    return starts


def filled_buffer(n_steps=6, n_envs=3, length=3, **kwargs):
    """A full buffer whose observation is (env, step) and whose episodes last ``length`` steps."""
    buffer = BehaviorRolloutBuffer(n_steps, gym.spaces.Box(-np.inf, np.inf, (2,)), gym.spaces.Discrete(2), **kwargs)
    buffer.n_envs = n_envs
    buffer.reset()
    starts = starts_for(n_steps, n_envs, length)
    for t in range(n_steps):
        obs = np.array([[i, t] for i in range(n_envs)], dtype=np.float32)
        buffer.add(obs, np.zeros((n_envs, 1)), np.zeros(n_envs), starts[t], th.zeros(n_envs), th.zeros(n_envs))
    buffer.compute_returns_and_advantage(th.zeros(n_envs), np.ones(n_envs))
    return buffer


def test_whole_episodes_minibatches_are_shuffled_episodes_in_step_order():
    """6 episodes of 3 steps; minibatches of 6 samples = 2 whole episodes each; every sample once."""
    np.random.seed(0)
    buffer = filled_buffer(whole_episodes=True)
    batches = [b.observations.numpy().astype(int) for b in buffer.get(6)]
    assert len(batches) == 3
    episodes = [tuple(map(tuple, b[k : k + 3])) for b in batches for k in (0, 3)]
    for ep in episodes:
        env, steps = ep[0][0], [s for _, s in ep]
        assert all(e == env for e, _ in ep) and steps[0] % 3 == 0 and steps == list(range(steps[0], steps[0] + 3))
    assert len(set(episodes)) == 6
    order = [ep[0] for ep in episodes]
    assert order != sorted(order)  # shuffled (seeded)
    whole = buffer.get()  # batch_size None: everything, once
    assert len(next(whole).observations) == 18


def test_whole_episodes_must_be_a_bool_and_default_keeps_sb3s_shuffle():
    with pytest.raises(ValueError, match="whole_episodes must be True or False, got 'yes'"):
        BehaviorRolloutBuffer(4, gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), whole_episodes="yes")
    np.random.seed(0)
    buffer = filled_buffer()
    assert not buffer.whole_episodes
    first = next(buffer.get(6)).observations.numpy()
    assert not all(first[k, 0] == first[k + 1, 0] for k in range(5))  # samples from several envs and steps
