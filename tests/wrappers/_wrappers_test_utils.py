"""Helpers for the wrappers tests (imported by path: pytest runs in importlib mode).

A toy env over any action space whose dynamics use its seeded ``np_random``, constant actors
that tell snapshots apart, an SB3 policy per space, and the exact binomial interval.
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
