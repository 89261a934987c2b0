"""Helpers for the wrappers tests (imported by path: pytest runs in importlib mode).

A toy env over any action space whose dynamics use its seeded ``np_random``, constant actors
that tell snapshots apart, an SB3 policy per space, the exact binomial interval, and
:class:`Execution`: one test body run on both executions of a friction (the per-env wrapper,
and the vector wrapper of the same name over a ``SyncVectorEnv``, read sub-env by sub-env).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
from gymnasium import spaces

SPACES = {
    "discrete": spaces.Discrete(5),
    "discrete_start": spaces.Discrete(4, start=2),
    "multidiscrete": spaces.MultiDiscrete([3, 4]),
    "box": spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
}


class ToyEnv(gym.Env):
    """Random observations in [-1, 1]^3 and a random reward in [0, 1] from its seeded np_random.

    The reward is 1 when the action is the optimal one (the sign pattern of the observation
    decides it), otherwise uniform in [0, 0.5); episodes end at random (p=0.1 per step) or
    after 30 steps. ``last_action`` is what the env really received.
    """

    metadata = {"render_modes": []}

    def __init__(self, action_space: gym.Space | str = "discrete") -> None:
        self.action_space = SPACES[action_space] if isinstance(action_space, str) else action_space
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
        self.last_action = None
        self._t = 0

    def _obs(self):
        self._state = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return self._state

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def optimal_action(self):
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            return np.int64(space.start + int(self._state[0] > 0))
        if isinstance(space, spaces.MultiDiscrete):
            return (self._state[:2] > 0).astype(space.dtype)
        return np.sign(self._state[:2]).astype(np.float32)

    def step(self, action):
        assert self.action_space.contains(action), action
        self.last_action = action
        correct = np.allclose(np.asarray(action, dtype=np.float64), np.asarray(self.optimal_action(), dtype=np.float64))
        reward = 1.0 if correct else float(self.np_random.uniform(0, 0.5))
        self._t += 1
        terminated = bool(self.np_random.random() < 0.1)
        truncated = self._t >= 30
        return self._obs(), reward, terminated, truncated, {"t": self._t}


class ConstantActor:
    """An Actor that always returns ``action`` with log-prob ``log_prob`` (tells snapshots apart)."""

    def __init__(self, action, log_prob=-1.0):
        self.action, self.log_prob = action, log_prob

    def __call__(self, obs, rng, noise_std=0.0):
        n = len(obs)
        return np.stack([np.asarray(self.action)] * n), np.full(n, self.log_prob)


def sb3_policy(observation_space, action_space, seed=0):
    """A small SB3 ActorCriticPolicy (no algorithm around it)."""
    import torch as th
    from stable_baselines3.common.policies import ActorCriticPolicy

    th.manual_seed(seed)
    return ActorCriticPolicy(observation_space, action_space, lr_schedule=lambda _: 1e-3, net_arch=[16])


def binomial_interval(n: int, p: float, level: float = 0.99) -> tuple[int, int]:
    """Smallest ``lo`` and largest ``hi`` with P(X < lo) <= a/2 and P(X > hi) <= a/2, X ~ Bin(n, p)."""
    alpha = (1 - level) / 2
    log_pmf = [
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)
        for k in range(n + 1)
    ]
    pmf = np.exp(np.array(log_pmf))
    cdf = np.cumsum(pmf)
    lo = int(np.searchsorted(cdf, alpha, side="right"))  # P(X <= lo-1) <= alpha
    sf = 1 - cdf  # P(X > k)
    hi = int(np.argmax(sf <= alpha))
    return lo, hi


def rollout(env, seed, n_steps, action_seed=123):
    """Step ``env`` for ``n_steps`` with seeded random actions (one seeded reset, then unseeded ones)."""
    env.action_space.seed(action_seed)
    obs, info = env.reset(seed=seed)
    out = []
    episode = 0
    for _ in range(n_steps):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        received = getattr(env.unwrapped, "last_action", None)
        out.append(dict(obs=obs, reward=reward, terminated=terminated, truncated=truncated, info=info, episode=episode, action=action, received=received))
        if terminated or truncated:
            episode += 1
            obs, info = env.reset()
    return out


# ---------------------------------------------------------------- one test body, both executions

#: The executions every friction has: the per-env wrapper, and the vector wrapper of the same name.
EXECUTIONS = ("env", "vector")

#: Sub-envs of the vector execution's SyncVectorEnv.
NUM_SUB_ENVS = 4


def split_vector_info(info: dict, num_envs: int) -> list[dict]:
    """A Gymnasium vector ``info`` (arrays + ``"_" + key`` masks) as one dict per sub-env.

    Entries go where their mask is set (everywhere without a mask); nested dicts are split
    alike; ``frictions`` (tuples in the vector convention) become lists, as per env.
    """
    out: list[dict] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key.startswith("_") and key[1:] in info:
            continue
        mask = info.get("_" + key, np.ones(num_envs, dtype=bool))
        rows = split_vector_info(value, num_envs) if isinstance(value, dict) else value
        for i in np.flatnonzero(mask).tolist():
            item = rows[i]
            out[i][key] = list(item) if key == "frictions" else item
    return out


class Execution:
    """A friction test's view of one execution.

    ``X.w`` is the namespace of the wrappers (``dg_envs.wrappers`` or ``dg_envs.wrappers.vector``:
    the same names), ``X.make(make_env)`` the env they wrap (the env itself, or a
    ``SyncVectorEnv`` of ``NUM_SUB_ENVS`` copies), and ``X.rollouts(env, seed, n_steps)`` the
    steps of each sub-env (one list for a single env), about ``n_steps`` in all, as dicts like
    :func:`rollout`'s. A vector rollout leaves out each sub-env's reset steps (``NEXT_STEP``).
    """

    def __init__(self, kind: str, num_envs: int = NUM_SUB_ENVS, **vector_kwargs) -> None:
        import dg_envs.wrappers
        import dg_envs.wrappers.vector

        self.kind = kind
        self.vector = kind == "vector"
        self.w = dg_envs.wrappers.vector if self.vector else dg_envs.wrappers
        self.num_envs = num_envs if self.vector else 1
        self.vector_kwargs = vector_kwargs

    def __repr__(self) -> str:
        return self.kind

    def make(self, make_env=ToyEnv, *args, **kwargs):
        if not self.vector:
            return make_env(*args, **kwargs)
        return gym.vector.SyncVectorEnv([lambda: make_env(*args, **kwargs)] * self.num_envs, **self.vector_kwargs)

    def sub_envs(self, env) -> list:
        """The single envs below (for what they really received)."""
        return list(env.unwrapped.envs) if self.vector else [env.unwrapped]

    def batch(self, make_one):
        """A callable's answer for a whole batch: ``make_one(row)`` per observation row (vector), else one."""
        if not self.vector:
            return make_one
        return lambda obs, *rest: [make_one(row, *rest) for row in obs]

    def step(self, env, action) -> list[dict]:
        """Step every sub-env with ``action``; the info of each."""
        if not self.vector:
            return [env.step(action)[4]]
        info = env.step(np.stack([np.asarray(action)] * self.num_envs))[4]
        return split_vector_info(info, self.num_envs)

    def rollouts(self, env, seed, n_steps, action_seed=123) -> list[list[dict]]:
        if not self.vector:
            return [rollout(env, seed, n_steps, action_seed)]
        n = self.num_envs
        envs = self.sub_envs(env)
        next_step = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP) == gym.vector.AutoresetMode.NEXT_STEP
        env.action_space.seed(action_seed)
        env.reset(seed=seed)
        out: list[list[dict]] = [[] for _ in range(n)]
        episode, resetting = [0] * n, np.zeros(n, dtype=bool)
        for _ in range(-(-n_steps // n)):
            actions = env.action_space.sample()
            obs, rewards, terminated, truncated, info = env.step(actions)
            infos = split_vector_info(info, n)
            for i in np.flatnonzero(~resetting).tolist():
                out[i].append(dict(
                    obs=obs[i], reward=float(rewards[i]), terminated=bool(terminated[i]), truncated=bool(truncated[i]),
                    info=infos[i], episode=episode[i], action=actions[i], received=getattr(envs[i].unwrapped, "last_action", None),
                ))
                episode[i] += bool(terminated[i] or truncated[i])
            resetting = np.logical_or(terminated, truncated) if next_step else resetting
        return out

    def steps(self, env, seed, n_steps) -> list[dict]:
        """All sub-envs' steps in one list (for counting)."""
        return [step for steps in self.rollouts(env, seed, n_steps) for step in steps]


def executions(**vector_kwargs):
    """``pytest.mark.parametrize("X", ...)`` over both executions."""
    import pytest

    return pytest.mark.parametrize("X", [Execution("env"), Execution("vector", **vector_kwargs)], ids=EXECUTIONS)
