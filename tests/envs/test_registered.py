"""Every registered dg_envs id: check_env (Gymnasium and SB3), seeded determinism, pickling,
rebuilding from the spec, and an oracle that scores the maximum reward."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dg_envs  # noqa: F401 - registers the ids
from dg_envs.envs import ENV_IDS

# Keep MNIST offline in tests whatever lies in the user's cache directory.
KWARGS = {"dg_envs/MNISTBandit-v0": {"source": "offline"}}


def make(env_id):
    return gym.make(env_id, **KWARGS.get(env_id, {}))


def rollout(env, seed, n_steps=60, action_seed=123):
    """Seeded reset, then a fixed action sequence; resets (unseeded) after each episode end."""
    actions = np.random.default_rng(action_seed).integers(0, env.action_space.n, n_steps)
    obs, _ = env.reset(seed=seed)
    trace = [obs.copy()]
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(int(a))
        trace += [obs.copy(), reward, terminated, truncated]
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs.copy())
    return trace


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_all_ids_registered():
    assert set(ENV_IDS) <= set(gym.registry)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    env = make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither checker may warn
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_determinism(env_id):
    assert same(rollout(make(env_id), seed=7), rollout(make(env_id), seed=7))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_round_trip_continues_identically(env_id):
    env = make(env_id)
    env.reset(seed=3)
    env.step(0)
    env.reset()
    clone = pickle.loads(pickle.dumps(env))
    actions = np.random.default_rng(0).integers(0, env.action_space.n, 30)
    for a in actions:
        out, out_clone = env.step(int(a)), clone.step(int(a))
        assert same(out[:4], out_clone[:4])
        if out[2] or out[3]:
            assert same([env.reset()[0]], [clone.reset()[0]])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rebuild_from_spec(env_id):
    env = make(env_id)
    rebuilt = gym.make(env.spec)
    assert same(rollout(env, seed=1), rollout(rebuilt, seed=1))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_oracle_scores_maximum(env_id):
    """With default arguments every env pays at most 1 per episode; the oracle gets exactly 1."""
    env = make(env_id)
    oracle = env.get_wrapper_attr("optimal_action")
    env.reset(seed=0)
    for _episode in range(50):
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(oracle())
            total += reward
            done = terminated or truncated
        assert total == 1.0
        env.reset()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_vec_env_and_rgb_array(env_id):
    """SB3's make_vec_env first asks for render_mode="rgb_array": every id must accept it."""
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=KWARGS.get(env_id, {}))
    venv.reset()
    venv.step(np.zeros(2, dtype=np.int64))
    frames = venv.get_images()
    venv.close()
    assert len(frames) == 2
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.size > 0
