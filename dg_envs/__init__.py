"""dg_envs: the Delightful Policy Gradient (DG) and the Kondo gate for Gymnasium and SB3.

Importing the package registers its environments with Gymnasium:

>>> import gymnasium as gym
>>> import dg_envs
>>> env = gym.make("dg_envs/KArmedBandit-v0", n_arms=5)
>>> env.action_space
Discrete(5)
"""

from dg_envs.envs import register_envs

__version__ = "0.1.0"

register_envs()

__all__ = ["__version__", "register_envs"]
