"""DG and Kondo variants of Stable-Baselines3's policy-gradient algorithms, and the papers' baselines."""

from dg_envs.algos.a2c import DGA2C, IWPG, PG, KondoA2C
from dg_envs.algos.gates import delight, dg_gate, kondo_gate
from dg_envs.algos.ppo import DGPPO, KondoPPO
from dg_envs.algos.relabel import BehaviorRolloutBuffer, ExecutedActionMixin
from dg_envs.algos.transformer import TokenTransformerExtractor

__all__ = [
    "DGA2C", "DGPPO", "IWPG", "PG", "BehaviorRolloutBuffer", "ExecutedActionMixin",
    "KondoA2C", "KondoPPO", "TokenTransformerExtractor", "delight", "dg_gate", "kondo_gate",
]
