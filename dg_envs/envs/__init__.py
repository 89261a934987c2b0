"""The environment families: bandits, MNIST as a bandit, token reversal (MuJoCo comes from Gymnasium)."""

import gymnasium as gym

from dg_envs.envs.dmc import DMC_IDS, DMC_TASKS, dmc_id  # no dm_control import: the ids load it lazily

ENV_IDS = (
    "dg_envs/KArmedBandit-v0",
    "dg_envs/ContextualBandit-v0",
    "dg_envs/MNISTBandit-v0",
    "dg_envs/TokenReversal-v0",
)

#: Gymnasium's MuJoCo tasks used as the continuous-control family (``pip install "dg-envs[mujoco]"``).
MUJOCO_IDS = ("InvertedPendulum-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")

#: id -> (entry_point, vector_entry_point): the single env and its native NumPy-batched vector env.
_ENTRY_POINTS = {
    "dg_envs/KArmedBandit-v0": ("dg_envs.envs.bandits:KArmedBanditEnv", "dg_envs.envs.bandits:KArmedBanditVectorEnv"),
    "dg_envs/ContextualBandit-v0": (
        "dg_envs.envs.bandits:ContextualBanditEnv",
        "dg_envs.envs.bandits:ContextualBanditVectorEnv",
    ),
    "dg_envs/MNISTBandit-v0": ("dg_envs.envs.mnist:MNISTBanditEnv", "dg_envs.envs.mnist:MNISTBanditVectorEnv"),
    "dg_envs/TokenReversal-v0": (
        "dg_envs.envs.token_reversal:TokenReversalEnv",
        "dg_envs.envs.token_reversal:TokenReversalVectorEnv",
    ),
}


def register_envs() -> None:
    """Register every dg_envs id with Gymnasium (idempotent; called on ``import dg_envs``).

    Each id also has a ``vector_entry_point``, so ``gym.make_vec(id, num_envs=N)`` builds the
    native vector env (``vectorization_mode="vector_entry_point"``, Gymnasium's default when
    one exists).
    """
    for env_id, (entry_point, vector_entry_point) in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point)
    # DeepMind Control Suite tasks (the `dmc` extra, imported only when one is made): DMC_IDS.
    for domain, task in DMC_TASKS:
        if dmc_id(domain, task) not in gym.registry:
            gym.register(id=dmc_id(domain, task), entry_point="dg_envs.envs.dmc:make_dmc",
                         kwargs={"domain": domain, "task": task})
