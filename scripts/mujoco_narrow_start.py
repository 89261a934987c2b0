"""PPO vs DGPPO on InvertedPendulum-v5 under the full-torque buggy actor, policies started narrow.

A follow-up to the surprisal ablation of ``dg-envs experiment mujoco`` (docs/results/README.md):
started at log std -2, DGPPO fails this task under the bug with every surprisal; is PPO any
better at that width? Same settings as the experiment (the Zoo YAML, p=0.1 landmine at the
action space's upper bound, 29 updates of 1,024 steps, greedy return over 5 clean episodes).

    python scripts/mujoco_narrow_start.py --log-std-init -2 --seeds 3
"""

from __future__ import annotations

import argparse
from functools import partial

import gymnasium as gym
import numpy as np
import torch

from dg_envs.experiments import mujoco
from dg_envs.experiments.training import RunSpec, train_run

TASK = "InvertedPendulum-v5"


def final_return(method: str, seed: int, log_std_init: float) -> float:
    """One run's final greedy return."""
    params = mujoco.hyperparams(method, TASK)
    timesteps = params.pop("n_timesteps")
    params.pop("policy"), params.pop("n_envs")
    n_steps = params.pop("n_steps")
    frictions = mujoco.friction_settings(mujoco.Config(), gym.make(TASK).action_space.high)["bug"]
    spec = RunSpec(algo=mujoco._algorithm(method), env_id=TASK, seed=seed, total_updates=timesteps // n_steps,
                   n_steps=n_steps, frictions=frictions,
                   algo_kwargs={**params, "policy_kwargs": {"log_std_init": log_std_init}})
    return train_run(spec, partial(mujoco.mean_return, env_id=TASK, episodes=5))["final"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-std-init", type=float, default=-2.0)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for method in ("PPO", "DGPPO"):
        returns = [final_return(method, seed, args.log_std_init) for seed in range(args.seeds)]
        print(f"{method}: {np.mean(returns):.1f} ± {np.std(returns, ddof=1):.1f} {[round(r, 1) for r in returns]}")


if __name__ == "__main__":
    main()
