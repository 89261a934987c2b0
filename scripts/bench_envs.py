"""Steps/s of every dg_envs environment vs CartPole-v1 (see dg_envs.bench.envs)."""

import argparse

from dg_envs.bench.envs import bench_envs
from dg_envs.cli import positive_int

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=positive_int, default=20_000, help="steps per repeat")
    parser.add_argument("--repeats", type=positive_int, default=5, help="repeats (the median is reported)")
    args = parser.parse_args()
    results = bench_envs(n_steps=args.steps, repeats=args.repeats)
    slow = [r.env_id for r in results if r.ratio < 1.0]
    raise SystemExit(f"slower than CartPole-v1: {slow}" if slow else 0)
