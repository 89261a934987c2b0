"""DG and Kondo variants of Stable-Baselines3's policy-gradient algorithms, and the papers' baselines."""

from dg_envs.algos.gates import delight, dg_gate, kondo_gate

__all__ = ["delight", "dg_gate", "kondo_gate"]
