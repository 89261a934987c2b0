"""Helpers for the algos tests (imported by path: pytest runs in importlib mode): tiny nets, seeded CartPole, a toy action-replacing wrapper."""

import gymnasium as gym
import numpy as np
import torch as th

from dg_envs.wrappers.protocol import record_replacement

SMALL = dict(policy_kwargs=dict(net_arch=[16]), seed=0, device="cpu")


def params_of(model):
    return [p.detach().clone() for p in model.policy.parameters()]


def assert_same_params(a, b, atol=0.0):
    for x, y in zip(params_of(a), params_of(b), strict=True):
        if atol == 0.0:
            assert th.equal(x, y)
        else:
            assert th.allclose(x, y, atol=atol, rtol=0), (x - y).abs().max()


class AlwaysReplace(gym.Wrapper):
    """Replace every action by ``action`` and report ``log_prob`` (a landmine-style actor)."""

    def __init__(self, env, action=0, log_prob=0.0, p=1.0):
        super().__init__(env)
        self.action, self.log_prob, self.p = action, log_prob, p
        self._rng = np.random.default_rng(0)

    def step(self, action):
        replace = self._rng.random() < self.p
        obs, r, term, trunc, info = self.env.step(self.action if replace else action)
        if replace:
            record_replacement(info, executed_action=self.action, behavior_log_prob=self.log_prob, friction="bug")
        return obs, r, term, trunc, info


def bandit_venv(n_envs=8, n_contexts=5, n_arms=5, seed=0):
    """A DummyVecEnv of the small contextual bandit (5 contexts x 5 arms)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    import dg_envs  # noqa: F401  (registers the ids)

    venv = DummyVecEnv([lambda: gym.make("dg_envs/ContextualBandit-v0", n_contexts=n_contexts, n_arms=n_arms)] * n_envs)
    venv.seed(seed)
    return venv


def bandit_accuracy(model, n_contexts=5, n_arms=5):
    """Expected accuracy of the *stochastic* policy: mean over contexts of pi(correct arm | context).

    Random play scores 1/n_arms. Stricter than the greedy action's accuracy.
    """
    env = gym.make("dg_envs/ContextualBandit-v0", n_contexts=n_contexts, n_arms=n_arms).unwrapped
    obs = th.as_tensor(np.eye(n_contexts, dtype=np.float32))
    with th.no_grad():
        probs = model.policy.get_distribution(obs).distribution.probs
    correct = th.as_tensor(np.asarray(env.correct_arms))
    return float(probs[th.arange(n_contexts), correct].mean())
