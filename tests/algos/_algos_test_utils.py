"""Helpers for the algos tests (imported by path: pytest runs in importlib mode): tiny nets, seeded CartPole, a toy action-replacing wrapper."""

import gymnasium as gym
import numpy as np
import pytest
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
