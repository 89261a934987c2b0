"""DGPPO learns a MuJoCo task in a test-sized budget: InvertedPendulum-v5, return >= 900 of 1000.

Settings and budget are the Zoo YAML's (``dg_envs/zoo/hyperparams/dgppo.yml``: 30k steps,
1024-step rollouts, batch 256, learning rate 1e-3), about 20-30 s on one CPU core.
"""

import torch

from dg_envs.algos import DGPPO
from dg_envs.experiments.mujoco import mean_return
from dg_envs.zoo import load_hyperparams


def test_dgppo_balances_the_inverted_pendulum():
    torch.set_num_threads(1)
    params = load_hyperparams("dgppo", "InvertedPendulum-v5")
    timesteps, policy = int(params.pop("n_timesteps")), params.pop("policy")
    params.pop("n_envs")
    model = DGPPO(policy, "InvertedPendulum-v5", seed=0, device="cpu", **params)
    untrained = mean_return(model, "InvertedPendulum-v5", episodes=5)
    model.learn(timesteps)
    trained = mean_return(model, "InvertedPendulum-v5", episodes=5)
    assert untrained < 100 and trained >= 900, (untrained, trained)
