"""DGPPO vs PPO throughput and KondoA2C vs DGA2C train() time / MNIST error (see dg_envs.bench.algos)."""

import argparse

from dg_envs.bench.algos import bench_algos

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args()
    bench_algos(quick=args.quick)
