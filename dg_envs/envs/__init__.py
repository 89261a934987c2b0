"""The environment families: bandits, MNIST as a bandit, token reversal (MuJoCo comes from Gymnasium)."""

import gymnasium as gym

ENV_IDS = (
    "dg_envs/KArmedBandit-v0",
    "dg_envs/ContextualBandit-v0",
    "dg_envs/MNISTBandit-v0",
    "dg_envs/TokenReversal-v0",
)

#: Gymnasium's MuJoCo tasks used as the continuous-control family (``pip install "dg-envs[mujoco]"``).
MUJOCO_IDS = ("InvertedPendulum-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")

_ENTRY_POINTS = {
    "dg_envs/KArmedBandit-v0": "dg_envs.envs.bandits:KArmedBanditEnv",
    "dg_envs/ContextualBandit-v0": "dg_envs.envs.bandits:ContextualBanditEnv",
    "dg_envs/MNISTBandit-v0": "dg_envs.envs.mnist:MNISTBanditEnv",
    "dg_envs/TokenReversal-v0": "dg_envs.envs.token_reversal:TokenReversalEnv",
}


def register_envs() -> None:
    """Register every dg_envs id with Gymnasium (idempotent; called on ``import dg_envs``)."""
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)
