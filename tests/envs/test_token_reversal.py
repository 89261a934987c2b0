"""TokenReversalEnv: the 4 tasks x 2 rewards, spaces, rewards, chance levels, bad arguments."""

import itertools
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dg_envs  # noqa: F401
from dg_envs.envs.token_reversal import REWARDS, TASKS, TokenReversalEnv

SIZES = [(1, 2), (4, 3), (10, 2)]  # (length H, vocab_size M)
GRID = list(itertools.product(TASKS, REWARDS, SIZES))


def expected_target(prompt, task, M):
    """Hand-written from the task definitions (the reference code's shift is (x + 1) mod M)."""
    if "shift" in task:
        x = np.array([(int(t) + 1) % M for t in prompt])
    elif "flip" in task or "complement" in task:
        x = np.array([M - 1 - int(t) for t in prompt])
    else:
        x = prompt
    return x[::-1] if task.startswith("reverse") else x


def play(env, actions_fn):
    """One episode; actions_fn(env, t) gives the t-th action. Returns (total reward, last info)."""
    total, t, done = 0.0, 0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(actions_fn(env, t))
        assert terminated == (t == env.length - 1) and not truncated
        if not terminated:
            assert reward == 0.0 and info == {}
        total += reward
        t += 1
        done = terminated or truncated
    return total, info


def exact_reward_moments(H, M, reward, kappa):
    """E[R] and Var[R] for uniformly random tokens, by enumerating which tokens are right.

    Each random token is right with probability q = 1/M, independently of the prompt.
    """
    q = 1.0 / M
    mean = second = 0.0
    for pattern in itertools.product((0, 1), repeat=H):
        k = sum(pattern)
        p = q**k * (1 - q) ** (H - k)
        prefix = next((i for i, ok in enumerate(pattern) if not ok), H)
        c = k / H if reward == "bag" else prefix / H
        r = kappa * c + (1 - kappa) * float(k == H)
        mean += p * r
        second += p * r * r
    return mean, second - mean**2


@pytest.mark.parametrize("task,reward,size", GRID)
def test_check_env_grid(task, reward, size):
    H, M = size
    kwargs = dict(length=H, vocab_size=M, task=task, reward=reward)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make("dg_envs/TokenReversal-v0", **kwargs).unwrapped)
        sb3_check_env(TokenReversalEnv(**kwargs))


@pytest.mark.parametrize("task,reward,size", GRID)
def test_oracle_perfect_and_targets(task, reward, size):
    H, M = size
    env = TokenReversalEnv(length=H, vocab_size=M, task=task, reward=reward, kappa=0.3)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        assert np.array_equal(env.target, expected_target(env.prompt, task, M))
        assert np.array_equal(obs[:H], env.prompt) and np.all(obs[H : 2 * H] == M) and obs[2 * H] == 0
        total, info = play(env, lambda e, t: e.optimal_action())
        assert total == 1.0 and info["perfect"] and info["token_accuracy"] == 1.0
        obs, _ = env.reset()


def test_observation_tracks_answer_and_position():
    env = TokenReversalEnv(length=3, vocab_size=3)
    obs, _ = env.reset(seed=1)
    assert list(env.observation_space.nvec) == [3, 3, 3, 4, 4, 4, 4]
    obs, *_ = env.step(2)
    assert obs[3:].tolist() == [2, 3, 3, 1]
    obs, *_ = env.step(0)
    assert obs[3:].tolist() == [2, 0, 3, 2]


@pytest.mark.parametrize("reward", REWARDS)
def test_partial_credit_bag_and_sequential(reward):
    """Target [0,0,0,0] (copy of all-zero prompt): answer 0,1,0,0 is 3/4 (bag) or 1/4 (sequential)."""
    env = TokenReversalEnv(length=4, vocab_size=2, task="copy", reward=reward, kappa=0.5)
    env.reset(seed=0)
    env.target = np.zeros(4, dtype=np.int64)
    env._target_list = [0, 0, 0, 0]
    total, info = play(env, lambda e, t: [0, 1, 0, 0][t])
    c = 0.75 if reward == "bag" else 0.25
    assert total == pytest.approx(0.5 * c)
    assert info["token_accuracy"] == 0.75 and info["prefix_accuracy"] == 0.25 and not info["perfect"]


@pytest.mark.parametrize(
    "H,M,reward,kappa", [(10, 2, "bag", 1.0), (10, 2, "sequential", 1.0), (4, 3, "bag", 0.5), (4, 3, "sequential", 0.0)]
)
def test_random_play_scores_chance(H, M, reward, kappa):
    """Uniform random tokens: bag E[c] = 1/M; sequential E[c] = (1/H) sum_{k=1..H} M**-k
    (the correct prefix L has P(L >= k) = M**-k); P(perfect) = M**-H. The empirical mean of
    n episodes must lie within 5 standard errors (exact variance by enumeration)."""
    mean, var = exact_reward_moments(H, M, reward, kappa)
    closed_c = 1 / M if reward == "bag" else sum(M**-k for k in range(1, H + 1)) / H
    assert mean == pytest.approx(kappa * closed_c + (1 - kappa) * M**-H)
    env = TokenReversalEnv(length=H, vocab_size=M, reward=reward, kappa=kappa)
    env.reset(seed=0)
    rng = np.random.default_rng(99)
    n = 4000
    rewards = []
    for _ in range(n):
        rewards.append(play(env, lambda e, t: int(rng.integers(M)))[0])
        env.reset()
    assert abs(np.mean(rewards) - mean) < 5 * np.sqrt(var / n)


def test_prompts_uniform_and_seeded():
    env = TokenReversalEnv(length=10, vocab_size=2)
    env.reset(seed=0)
    tokens = np.concatenate([env.reset()[0][:10] for _ in range(1000)])
    assert abs(tokens.mean() - 0.5) < 5 * np.sqrt(0.25 / tokens.size)
    a, b, c = TokenReversalEnv(), TokenReversalEnv(), TokenReversalEnv()
    a.reset(seed=4), b.reset(seed=4), c.reset(seed=5)
    assert np.array_equal(a.prompt, b.prompt) and not np.array_equal(a.prompt, c.prompt)


def test_seeded_determinism_and_pickle_mid_episode():
    env = TokenReversalEnv(length=5, vocab_size=3, reward="sequential")
    env.reset(seed=2)
    env.step(1)
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(3):
        for a in [0, 2, 1, 1, 0][env._pos :]:
            o1, o2 = env.step(a), clone.step(a)
            assert np.array_equal(o1[0], o2[0]) and o1[1:] == o2[1:]
        assert np.array_equal(env.reset()[0], clone.reset()[0])


def test_episode_end_guards_and_render():
    env = TokenReversalEnv(length=2, render_mode="ansi")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    first = env.optimal_action()
    env.step(first)
    assert f"answer: {first} _ |" in env.render()
    env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.optimal_action()
    with pytest.raises(ValueError, match="action"):
        env.reset()
        env.step(2)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"length": 0}, "length"),
        ({"length": 2.0}, "length"),
        ({"vocab_size": 1}, "vocab_size"),
        ({"vocab_size": True}, "vocab_size"),
        ({"task": "reverse"}, "task"),
        ({"reward": "dense"}, "reward"),
        ({"kappa": 1.5}, "kappa"),
        ({"kappa": -float("inf")}, "kappa"),
        ({"kappa": float("nan")}, "kappa"),
        ({"kappa": "high"}, "kappa"),
        ({"kappa": "0.5"}, "kappa"),
        ({"kappa": True}, "kappa"),
        ({"length": "4"}, "length"),
        ({"task": ["copy"]}, "task"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TokenReversalEnv(**kwargs)


@pytest.mark.parametrize(
    "action", [1.7, 1.0, "1", True, None, -1, 2, np.float64(0.0), np.array(1.0), np.array([0, 1])], ids=repr
)
def test_step_rejects_bad_action(action):
    """A fractional or string token is not truncated to a token: it raises, names ``action``
    and leaves the episode where it was."""
    env = TokenReversalEnv(length=3, vocab_size=2)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 2\)"):
        env.step(action)
    assert env._pos == 0 and np.array_equal(env._obs, obs)


def test_step_accepts_integer_actions_not_bad():
    """Python and NumPy integers, and integer arrays of shape () or (1,), all write the same token."""
    answers = []
    for action in (1, np.int64(1), np.uint8(1), np.array(1), np.array([1])):
        env = TokenReversalEnv(length=2, vocab_size=3)
        env.reset(seed=0)
        answers.append(env.step(action)[0].tolist())
    assert all(a == answers[0] for a in answers) and answers[0][2] == 1


def test_shift_differs_from_complement_for_m_above_2_and_agrees_for_m_2():
    prompt = np.array([0, 1, 2, 2])
    from dg_envs.envs.token_reversal import task_target

    assert task_target(prompt, "shift", 3).tolist() == [1, 2, 0, 0]
    assert task_target(prompt, "complement", 3).tolist() == [2, 1, 0, 0]
    binary = np.array([0, 1, 1, 0])
    assert np.array_equal(task_target(binary, "reverse_shift", 2), task_target(binary, "reverse_flip", 2))


def test_negative_kappa_is_a_trap_reward():
    # kappa = -1: R = -c + 2 * 1{perfect}: a perfect answer pays 1, a half-right one -0.5.
    env = TokenReversalEnv(length=2, vocab_size=2, task="copy", kappa=-1.0)
    env.reset(seed=0)
    total, _ = play(env, lambda e, t: e.optimal_action())
    assert total == 1.0
    env.reset(seed=0)
    total, _ = play(env, lambda e, t: e.target[t] if t == 0 else 1 - e.target[t])
    assert total == -0.5
