"""PPO vs DGPPO on InvertedPendulum-v5 under the full-torque buggy actor, policies started narrow.

A follow-up to the surprisal ablation of ``dg-envs experiment mujoco`` (docs/results/README.md):
started at log std -2, DGPPO fails this task under the bug with every surprisal; is PPO any
better at that width? The runs are the experiment's ablation runs (its YAML settings, p=0.1
landmine at the action space's upper bound, 29 updates of 1,024 steps, greedy return over 5
clean episodes), DGPPO with its default surprisal.

    python scripts/mujoco_narrow_start.py --log-std-init -2 --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

import numpy as np

from dg_envs.cli import positive_int
from dg_envs.experiments import mujoco


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-std-init", type=float, default=-2.0)
    parser.add_argument("--seeds", type=positive_int, default=3)
    args = parser.parse_args()
    config = dataclasses.replace(mujoco.Config(), ablation_log_std_init=args.log_std_init)
    with tempfile.TemporaryDirectory() as out_dir:  # run_job saves nothing for these runs
        for method in ("PPO", "DGPPO"):
            jobs = [{"sweep": "ablation", "task": "InvertedPendulum-v5", "friction": "bug", "method": method, "seed": s}
                    for s in range(args.seeds)]
            returns = [mujoco.run_job(job, config, out_dir)["return"] for job in jobs]
            print(f"{method}: {np.mean(returns):.1f} ± {np.std(returns, ddof=1):.1f} {[round(r, 1) for r in returns]}")


if __name__ == "__main__":
    main()
