"""The group baseline: hand values, the errors it raises, and every algorithm of ours using it."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

import dg_envs  # noqa: F401
from dg_envs.algos import DGA2C, DGPPO, IWPG, PG, KondoA2C, KondoPPO, RelabelledA2C, RelabelledPPO
from dg_envs.algos.group import (
    GroupBaselineRolloutBuffer, group_baseline_advantages, group_baseline_options, group_size_of,
)
from dg_envs.vec_env import make_vec_env

ENV_ID = "dg_envs/TokenReversal-v0"


def unswap(buffer, name):
    """A buffer array as (n_steps, n_envs, ...) after SB3's get() has swapped and flattened it."""
    x = getattr(buffer, name)
    if not buffer.generator_ready:
        return x
    return x.reshape(buffer.n_envs, buffer.buffer_size, *x.shape[1:]).swapaxes(0, 1).squeeze(-1) if x.shape[-1] == 1 \
        else x.reshape(buffer.n_envs, buffer.buffer_size, *x.shape[1:]).swapaxes(0, 1)


def starts_for(n_steps, n_envs, length):
    starts = np.zeros((n_steps, n_envs))
    starts[::length] = 1
    return starts


def test_hand_values_sequence_reward_two_episodes_per_rollout():
    """2 groups of 2 envs, episodes of 2 steps, 2 episodes per rollout; the reward comes at the end."""
    rewards = np.array([
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.5, 0.5],  # episode 1 ends
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],  # episode 2 ends
    ])
    adv, ret = group_baseline_advantages(rewards, starts_for(4, 4, 2), group_size=2, last_dones=np.ones(4))
    expected = np.array([[0.5, -0.5, 0.0, 0.0]] * 2 + [[-0.5, 0.5, 0.5, -0.5]] * 2)
    np.testing.assert_array_equal(adv, expected)
    np.testing.assert_array_equal(ret, [[1, 0, 0.5, 0.5], [1, 0, 0.5, 0.5], [0, 1, 1, 0], [0, 1, 1, 0]])


def test_per_step_rewards_use_the_episode_return_undiscounted():
    """Advantage: whole-episode return minus the group mean, on every step; returns: reward-to-go."""
    rewards = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 1.0]])
    adv, ret = group_baseline_advantages(rewards, starts_for(3, 2, 3), group_size=2, last_dones=np.ones(2))
    np.testing.assert_array_equal(adv, [[2.0, -2.0]] * 3)  # returns 6 and 2, mean 4
    np.testing.assert_array_equal(ret, [[6.0, 2.0], [5.0, 2.0], [3.0, 1.0]])


def test_group_of_everyone_is_the_batch_mean_baseline():
    rewards = np.array([[1.0, 0.0, 0.0, 0.0]])  # one-step episodes (a bandit / MNIST)
    adv, _ = group_baseline_advantages(rewards, np.ones((1, 4)), group_size=4, last_dones=np.ones(4))
    np.testing.assert_array_equal(adv, [[0.75, -0.25, -0.25, -0.25]])


@pytest.mark.parametrize(
    "rewards_shape, starts, group_size, last_dones, match",
    [
        ((4, 4), starts_for(4, 4, 2), 3, None, "group_size must divide n_envs"),
        ((4, 4), np.array([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]), 2, None,
         r"episodes of group 1 \(envs 2..3\) do not start together \(rollout step 2\)"),
        ((4, 2), np.array([[0, 0], [1, 1], [0, 0], [1, 1]]), 2, None, "starts in the middle of an episode"),
        ((3, 2), starts_for(3, 2, 2), 2, np.array([False, False]), "cuts an episode"),
        ((3, 2), starts_for(3, 2, 2), 2, None, r"lengths \[2, 1\]: the last one is cut"),
        ((3, 2), np.ones((2, 2)), 2, None, "same shape|shape \\(n_steps, n_envs\\)"),
        ((2, 2), np.full((2, 2), 2), 2, None, "0/1"),
    ],
)
def test_unsynchronised_or_cut_episodes_raise(rewards_shape, starts, group_size, last_dones, match):
    with pytest.raises(ValueError, match=match) as error:
        group_baseline_advantages(np.zeros(rewards_shape), starts, group_size, last_dones)
    if "divide" not in match and "0/1" not in match and "shape" not in match:
        assert "n_steps a multiple of the episode length" in str(error.value)  # says what is needed


def test_buffer_ignores_values_gamma_and_lambda():
    from gymnasium import spaces

    buf = GroupBaselineRolloutBuffer(2, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), gamma=0.5, gae_lambda=0.3,
                                     n_envs=4, group_size=2)
    for t, r in enumerate([[0, 0, 0, 0], [1, 0, 0, 1]]):
        buf.add(np.zeros((4, 1)), np.zeros((4, 1)), np.array(r, dtype=np.float32), np.full(4, t == 0),
                th.full((4,), 10.0 * (t + 1)), th.zeros(4))
    buf.compute_returns_and_advantage(last_values=th.full((4,), 99.0), dones=np.ones(4, dtype=bool))
    np.testing.assert_array_equal(buf.advantages, [[0.5, -0.5, -0.5, 0.5]] * 2)
    np.testing.assert_array_equal(buf.returns, [[1, 0, 0, 1]] * 2)
    with pytest.raises(ValueError, match="group_size must divide n_envs"):
        GroupBaselineRolloutBuffer(2, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), n_envs=4, group_size=3)


def test_dga2c_end_to_end_on_the_native_vector_env():
    """gym.make_vec(TokenReversal, num_envs=20, vector_entry_point, group_size=10) through make_vec_env.

    (make_vec_env builds it with autoreset_mode=SAME_STEP: in Gymnasium's default NEXT_STEP mode
    the adapter resets finished sub-envs with options["reset_mask"], which the native env refuses.)
    """
    venv = make_vec_env(ENV_ID, n_envs=20, seed=0, env_kwargs=dict(length=4, group_size=10))
    assert group_size_of(venv) == 10
    model = DGA2C("MlpPolicy", venv, n_steps=8, seed=0, device="cpu", **group_baseline_options(venv))
    model.learn(20 * 8 * 3)
    buf = model.rollout_buffer
    assert isinstance(buf, GroupBaselineRolloutBuffer) and buf.group_size == 10
    prompts = unswap(buf, "observations")[:, :, :4]  # (step, env, prompt token)
    assert (prompts[:, :10] == prompts[:, :1]).all() and (prompts[:, 10:] == prompts[:, 10:11]).all()
    assert not (prompts[0, 0] == prompts[0, 10]).all() or not (prompts[4, 0] == prompts[4, 10]).all()
    adv, _ = group_baseline_advantages(buf.rewards, buf.episode_starts, 10, np.ones(20))
    np.testing.assert_allclose(unswap(buf, "advantages"), adv, atol=1e-6)
    assert np.allclose(adv.reshape(8, 2, 10).sum(-1), 0.0)  # centred per group
    assert np.abs(adv).max() > 0


def test_dga2c_with_a_dummy_vec_env_whose_groups_share_a_seed():
    """A DummyVecEnv of single envs: sub-envs seeded alike draw the same prompts; group_size passed explicitly."""
    venv = DummyVecEnv([lambda: gym.make(ENV_ID, length=3)] * 4)
    with pytest.raises(ValueError, match="no group_size attribute: pass group_size"):
        group_size_of(venv)
    model = DGA2C("MlpPolicy", venv, n_steps=6, seed=0, device="cpu", rollout_buffer_class=GroupBaselineRolloutBuffer,
                  rollout_buffer_kwargs={"group_size": 2})
    venv._seeds = [7, 7, 8, 8]  # the next reset seeds sub-envs 0, 1 alike and 2, 3 alike (SB3 seeded 0..3)
    model.learn(24 * 2)
    prompts = unswap(model.rollout_buffer, "observations")[:, :, :3]
    assert (prompts[:, 0] == prompts[:, 1]).all() and (prompts[:, 2] == prompts[:, 3]).all()
    assert not (prompts[:, 0] == prompts[:, 2]).all()


def test_n_steps_that_cut_an_episode_raise_before_training():
    venv = make_vec_env(ENV_ID, n_envs=4, seed=0, env_kwargs=dict(length=4, group_size=2))
    model = DGA2C("MlpPolicy", venv, n_steps=6, seed=0, device="cpu", **group_baseline_options(venv))
    before = [p.detach().clone() for p in model.policy.parameters()]
    with pytest.raises(ValueError, match="cuts an episode"):
        model.learn(24)
    assert all(th.equal(a, b) for a, b in zip(before, model.policy.parameters()))


@pytest.mark.parametrize("cls", [DGA2C, DGPPO, PG, IWPG, KondoA2C, KondoPPO, RelabelledA2C, RelabelledPPO])
def test_every_algorithm_takes_the_group_baseline(cls):
    venv = make_vec_env(ENV_ID, n_envs=4, seed=0, env_kwargs=dict(length=2, group_size=2))
    kwargs = dict(batch_size=8, n_epochs=1) if "PPO" in cls.__name__ else {}
    model = cls("MlpPolicy", venv, n_steps=4, seed=0, device="cpu", **group_baseline_options(venv), **kwargs)
    model.learn(16)
    buf = model.rollout_buffer
    assert isinstance(buf, GroupBaselineRolloutBuffer)
    assert unswap(buf, "behavior_log_probs").shape == (4, 4)  # behaviour log-probs still carried
    adv, _ = group_baseline_advantages(buf.rewards, buf.episode_starts, 2, np.ones(4))
    np.testing.assert_allclose(unswap(buf, "advantages"), adv, atol=1e-6)
