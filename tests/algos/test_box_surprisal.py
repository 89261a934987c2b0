"""Why Box actions default to entropy-centred surprisal: measured on HalfCheetah's 6-D policy.

A Gaussian log-*density* grows as the policy narrows, so raw ``-log pi(a)`` goes from large
positive (every sample looks surprising: the gate becomes a sign filter) to negative (the gate
inverts: good samples get w < 1/2, bad ones w > 1/2). Entropy-centred surprisal stays centred
on 0 at any width, as a common discrete action's does.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO

from dg_envs.algos.weighting import surprisal


def _surprisals(kind: str, std: float, n: int = 4096) -> np.ndarray:
    model = PPO("MlpPolicy", gym.make("HalfCheetah-v5"), seed=0, device="cpu")
    with th.no_grad():
        model.policy.log_std.fill_(np.log(std))
        obs = th.zeros((n, *model.observation_space.shape))
        dist = model.policy.get_distribution(obs)
        actions = dist.get_actions()
        log_prob, entropy = dist.log_prob(actions), dist.entropy()
    return surprisal(log_prob, entropy, kind, action_dim=6).numpy()


@pytest.mark.parametrize("std", [1.0, 0.1])
def test_raw_surprisal_has_no_fixed_sign_but_entropy_centred_is_centred(std):
    raw, centred = _surprisals("raw", std), _surprisals("entropy_centered", std)
    if std == 1.0:  # wide policy: log-density ~ -8.5, every action "surprising"
        assert (raw > 0).mean() > 0.99 and raw.mean() > 7.0
    else:  # narrow policy: log-density ~ +5.3, raw surprisal negative: the gate would invert
        assert (raw < 0).mean() > 0.99 and raw.mean() < -4.0
    # entropy-centred: mean ~0, about half above and half below, at either width
    assert abs(centred.mean()) < 0.1 and 0.4 < (centred > 0).mean() < 0.6
