"""KArmedBanditEnv and ContextualBanditEnv."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dg_envs  # noqa: F401
from dg_envs.envs.bandits import ContextualBanditEnv, KArmedBanditEnv

VARIANTS = [
    (KArmedBanditEnv, {}),
    (KArmedBanditEnv, {"n_arms": 1}),
    (KArmedBanditEnv, {"n_arms": 100, "correct_arm": 42}),
    (KArmedBanditEnv, {"n_arms": 3, "means": [0.2, 0.7, 0.5]}),
    (KArmedBanditEnv, {"n_arms": 3, "reward_dist": "gaussian", "means": [-1.0, 2.0, 0.5], "noise_std": 0.3}),
    (ContextualBanditEnv, {}),
    (ContextualBanditEnv, {"n_contexts": 100, "n_arms": 10}),
    (ContextualBanditEnv, {"n_contexts": 1, "n_arms": 2, "correct_arms": [1]}),
    (ContextualBanditEnv, {"n_contexts": 2, "n_arms": 3, "means": [[0.1, 0.9, 0.5], [0.8, 0.2, 0.0]]}),
    (ContextualBanditEnv, {"n_contexts": 2, "n_arms": 2, "reward_dist": "gaussian", "means": [[0, 1], [2, 0]]}),
]


def pull(env, action):
    """One full episode: reset, pull, return the reward."""
    env.reset()
    return env.step(action)[1]


def binomial_tolerance(p, n, sigmas=5.0):
    """Half-width of a 5-sigma interval for a mean of n Bernoulli(p) rewards.

    Seeds are fixed so the tests are deterministic; 5 sigma means a seed change would fail
    with probability < 1e-6 if the env were right.
    """
    return sigmas * np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("cls,kwargs", VARIANTS)
def test_check_env_grid(cls, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # spec from a registered id so that check_env also tests the ansi render mode
        env_id = "dg_envs/KArmedBandit-v0" if cls is KArmedBanditEnv else "dg_envs/ContextualBandit-v0"
        check_env(gym.make(env_id, **kwargs).unwrapped)
        sb3_check_env(cls(**kwargs))


@pytest.mark.parametrize("cls,kwargs", VARIANTS)
def test_seeded_determinism_and_pickle(cls, kwargs):
    def play(env, seed, n=40):
        rng = np.random.default_rng(0)
        out = []
        for i in range(n):
            obs, _ = env.reset(seed=seed if i == 0 else None)
            obs2, reward, terminated, _, _ = env.step(int(rng.integers(env.action_space.n)))
            out.append((obs.tolist(), obs2.tolist(), reward, terminated))
        return out

    assert play(cls(**kwargs), 5) == play(cls(**kwargs), 5)
    env = cls(**kwargs)
    env.reset(seed=9)
    clone = pickle.loads(pickle.dumps(env))
    for a in [0, 1, 0, 0, 0]:
        a = min(a, env.n_arms - 1)
        assert env.step(a)[1] == clone.step(a)[1]
        assert np.array_equal(env.reset()[0], clone.reset()[0])


def test_default_is_one_correct_arm_deterministic():
    env = KArmedBanditEnv()
    env.reset(seed=0)
    assert env.n_arms == 10 and env.optimal_action() == 0
    assert np.array_equal(env.means, np.eye(10)[0])
    assert [pull(env, a) for a in range(10) for _ in range(3)] == [1.0] * 3 + [0.0] * 27


@pytest.mark.parametrize("cls,kwargs", VARIANTS)
def test_oracle_is_argmax_mean(cls, kwargs):
    env = cls(**kwargs)
    env.reset(seed=0)
    for _ in range(20):
        means = env.means if cls is KArmedBanditEnv else env.means[env.context]
        assert env.optimal_action() == int(np.argmax(means))
        _, _, _, _, info = env.step(env.optimal_action())
        assert info["regret"] == 0.0
        env.reset()


def test_oracle_and_random_bernoulli_means():
    """Bernoulli arms: the oracle's mean reward is the top mean, random play the average mean."""
    means = np.array([0.2, 0.7, 0.5])
    env = KArmedBanditEnv(n_arms=3, means=means)
    env.reset(seed=1)
    n = 20_000
    oracle = np.mean([pull(env, env.optimal_action()) for _ in range(n)])
    assert abs(oracle - 0.7) < binomial_tolerance(0.7, n)
    rng = np.random.default_rng(2)
    rand = np.mean([pull(env, int(rng.integers(3))) for _ in range(n)])
    assert abs(rand - means.mean()) < binomial_tolerance(means.mean(), n)


def test_gaussian_rewards_mean_and_noise():
    env = KArmedBanditEnv(n_arms=2, reward_dist="gaussian", means=[0.0, 2.0], noise_std=0.5)
    env.reset(seed=0)
    r = np.array([pull(env, 1) for _ in range(10_000)])
    # standard error of the mean 0.5/100 = 0.005; of the std about 0.5/sqrt(2*10^4) = 0.0035
    assert abs(r.mean() - 2.0) < 0.025 and abs(r.std() - 0.5) < 0.02
    assert env.optimal_action() == 1


@pytest.mark.parametrize("cls,kwargs", [(KArmedBanditEnv, {"n_arms": 4}), (ContextualBanditEnv, {"n_arms": 4})])
def test_random_play_scores_chance(cls, kwargs):
    """One correct arm: uniform random play scores 1/n_arms (5-sigma binomial tolerance)."""
    env = cls(**kwargs)
    env.reset(seed=0)
    # Not seed 0: the env's reset(seed=0) RNG is the same stream as default_rng(0),
    # which would correlate the actions with the contexts.
    rng = np.random.default_rng(12345)
    n = 10_000
    total = 0.0
    for _ in range(n):
        total += env.step(int(rng.integers(4)))[1]
        env.reset()
    assert abs(total / n - 0.25) < binomial_tolerance(0.25, n)


def test_contextual_contexts_uniform_and_one_hot():
    env = ContextualBanditEnv(n_contexts=5, n_arms=3)
    counts = np.zeros(5)
    obs, _ = env.reset(seed=0)
    for _ in range(5000):
        assert obs.dtype == np.float32 and obs.sum() == 1.0 and obs[env.context] == 1.0
        counts[env.context] += 1
        obs, _ = env.reset()
    assert np.all(np.abs(counts / 5000 - 0.2) < binomial_tolerance(0.2, 5000))


def test_contextual_table_fixed_by_table_seed():
    a, b, c = ContextualBanditEnv(table_seed=1), ContextualBanditEnv(table_seed=1), ContextualBanditEnv(table_seed=2)
    assert np.array_equal(a.correct_arms, b.correct_arms)
    assert not np.array_equal(a.correct_arms, c.correct_arms)
    a.reset(seed=0)
    c.reset(seed=0)  # reset seeds the contexts, never the table
    assert not np.array_equal(a.correct_arms, c.correct_arms)


def test_step_without_reset_raises():
    env = KArmedBanditEnv()
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_ansi_render():
    env = gym.make("dg_envs/KArmedBandit-v0", n_arms=3, render_mode="ansi")
    env.reset(seed=0)
    env.step(2)
    assert "pulled 2" in env.render()


def test_registered_ids_take_arguments():
    env = gym.make("dg_envs/ContextualBandit-v0", n_contexts=100, n_arms=10)
    assert env.observation_space.shape == (100,) and env.action_space.n == 10


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_arms": 0}, "n_arms"),
        ({"n_arms": 2.5}, "n_arms"),
        ({"reward_dist": "poisson"}, "reward_dist"),
        ({"correct_arm": 10}, "correct_arm"),
        ({"correct_arm": -1}, "correct_arm"),
        ({"means": [0.5, 0.5]}, "means"),
        ({"n_arms": 2, "means": [0.5, 1.5]}, "means"),
        ({"n_arms": 2, "means": [0.5, np.nan]}, "means"),
        ({"n_arms": 2, "means": [0.5, 0.1], "correct_arm": 1}, "correct_arm"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_k_armed_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        KArmedBanditEnv(**kwargs)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_contexts": 0}, "n_contexts"),
        ({"n_arms": 0}, "n_arms"),
        ({"correct_arms": [0, 1]}, "correct_arms"),
        ({"n_contexts": 2, "n_arms": 3, "correct_arms": [0, 3]}, "correct_arms"),
        ({"n_contexts": 2, "correct_arms": [0.0, 1.0]}, "correct_arms"),
        ({"table_seed": -1}, "table_seed"),
        ({"render_mode": "human"}, "render_mode"),
        ({"n_contexts": 2, "n_arms": 2, "means": [[0.1, 0.2], [0.3, 1.2]]}, "means"),
        ({"n_contexts": 2, "n_arms": 2, "means": [0.1, 0.2]}, "means"),
        ({"n_contexts": 1, "n_arms": 2, "means": [[0.1, 0.2]], "correct_arms": [0]}, "correct_arms"),
        ({"reward_dist": "uniform"}, "reward_dist"),
    ],
)
def test_contextual_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ContextualBanditEnv(**kwargs)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_arms": True}, "n_arms"),
        ({"noise_std": "wide"}, "noise_std"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"n_arms": 2, "means": ["a", "b"]}, "means"),
        ({"n_arms": 2, "means": [[0.5], [0.5, 0.5]]}, "means"),
    ],
)
def test_k_armed_more_bad_arguments(kwargs, name):
    """Wrong types are named, not left to a traceback from inside numpy or float()."""
    with pytest.raises(ValueError, match=name):
        KArmedBanditEnv(**kwargs)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_contexts": True}, "n_contexts"),
        ({"table_seed": 1.5}, "table_seed"),
        ({"n_contexts": 2, "correct_arms": [[0], [0, 1]]}, "correct_arms"),
        ({"n_contexts": 2, "correct_arms": ["a", "b"]}, "correct_arms"),
    ],
)
def test_contextual_more_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ContextualBanditEnv(**kwargs)


BAD_ACTIONS = [1.7, 1.0, "1", True, None, -1, 3, np.float32(1.0), np.array(1.0), np.array([0, 1]), np.array([[1]])]


@pytest.mark.parametrize("cls", [KArmedBanditEnv, ContextualBanditEnv])
@pytest.mark.parametrize("action", BAD_ACTIONS, ids=repr)
def test_step_rejects_bad_action(cls, action):
    """Fractional, string, bool and out-of-range actions raise instead of playing a truncated arm,
    and the episode stays live for a valid action."""
    env = cls(n_arms=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 3\)"):
        env.step(action)
    assert env.step(1)[2]


@pytest.mark.parametrize("cls", [KArmedBanditEnv, ContextualBanditEnv])
def test_step_accepts_integer_actions_not_bad(cls):
    """What Python code, Discrete.sample(), DummyVecEnv and model.predict pass all play arm 1."""
    env = cls(n_arms=3, means=[0.0, 1.0, 0.0] if cls is KArmedBanditEnv else [[0.0, 1.0, 0.0]] * 10)
    for action in (1, np.int64(1), np.int32(1), np.uint8(1), np.array(1), np.array([1]), np.array([1], np.int32)):
        env.reset(seed=0)
        assert env.step(action)[1] == 1.0


@pytest.mark.parametrize(
    "kwargs,contexts,rewards",
    [
        (
            {"n_contexts": 100, "n_arms": 10},
            [24, 67, 9, 21, 31, 30, 90, 79, 91, 99, 7, 14],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        ),
        (
            {"n_contexts": 4, "n_arms": 3, "reward_dist": "gaussian", "noise_std": 0.5,
             "means": [[0.1, 0.9, 0.5], [0.8, 0.2, 0.0], [0.3, 0.3, 0.3], [1.0, 0.0, 0.5]]},
            [0, 2, 3, 3, 3, 0, 1, 0, 3, 0, 0, 1],
            [0.92096, 0.87336, -0.1964, 1.033598, 0.254593, 1.405143,
             1.11988, 0.534339, 1.242203, 0.124456, 0.211789, -0.218185],
        ),
    ],
)
def test_contextual_seeded_trajectory_unchanged_by_bad_eye_fix(kwargs, contexts, rewards):
    """Recorded on the code that looked the one-hot up in an identity matrix: building it from
    the index changes neither observations nor the seeded contexts and rewards."""
    env = ContextualBanditEnv(**kwargs)
    obs, _ = env.reset(seed=2024)
    seen_contexts, seen_rewards = [], []
    for i in range(12):
        assert obs.dtype == np.float32 and obs.shape == (env.n_contexts,) and env.observation_space.contains(obs)
        assert np.array_equal(obs, np.eye(env.n_contexts, dtype=np.float32)[env.context])
        obs2, reward, *_ = env.step(i % env.n_arms)
        assert np.array_equal(obs2, obs)
        seen_contexts.append(env.context)
        seen_rewards.append(round(reward, 6))
        obs, _ = env.reset()
    assert seen_contexts == contexts and seen_rewards == rewards


def test_contextual_many_contexts_no_bad_allocation():
    """n_contexts=100,000 once built a 100,000 x 100,000 identity matrix (37 GiB); now memory
    is linear in n_contexts (a few MB here; tracemalloc sees NumPy's allocations)."""
    import tracemalloc

    tracemalloc.start()
    try:
        env = ContextualBanditEnv(n_contexts=100_000, n_arms=2)
        obs, info = env.reset(seed=0)
        obs2 = env.step(env.optimal_action())[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20
    assert obs.shape == (100_000,) and obs.sum() == 1.0 and obs[info["context"]] == 1.0
    assert np.array_equal(obs, obs2)
