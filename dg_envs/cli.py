"""The dg-envs command: the demo, the papers' experiments and the speed benchmarks.

>>> from dg_envs.cli import build_parser
>>> build_parser().parse_args(["experiment", "bandit-geometry", "--quick"]).quick
True
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dg_envs.experiments import EXPERIMENTS
from dg_envs.experiments.common import RESULTS_DIR


def _demo(args: argparse.Namespace) -> None:
    """MNIST as a bandit, learned from a very stale actor: PG vs IWPG vs DG (one seed, minutes)."""
    from dg_envs.experiments import run_experiment

    print("dg-envs demo: MNIST as a one-step bandit, learned from an actor that is "
          f"{args.lag} learner updates stale.\nPG and importance-weighted PG (exact behaviour "
          "probabilities) against DG (no correction). Greedy test error, lower is better.\n")
    start = time.perf_counter()
    table = run_experiment("mnist-staleness", seeds=args.seeds, out_dir=args.out, tensorboard_log=args.tensorboard,
                           lags=(0, args.lag), total_updates=args.updates, eval_every=max(args.updates // 6, 1))
    print(table)
    print(f"\nTable and figure: {Path(args.out) / 'mnist-staleness.md'}, {Path(args.out) / 'mnist-staleness.png'} "
          f"({time.perf_counter() - start:.0f} s). The full sweep: dg-envs experiment mnist-staleness")


def _experiment(args: argparse.Namespace) -> None:
    from dg_envs.experiments import run_experiment

    overrides = {"jobs": args.jobs} if args.jobs is not None else {}
    table = run_experiment(args.name, quick=args.quick, seeds=args.seeds, out_dir=args.out,
                           tensorboard_log=args.tensorboard, **overrides)
    print(table)
    print(f"\nWritten to {Path(args.out) / args.name}.md / .png / .jsonl")


def _bench(args: argparse.Namespace) -> None:
    from dg_envs.bench import run_all

    run_all(quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="dg-envs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the main job: a few-minute comparison, no data download")
    demo.add_argument("--lag", type=int, default=300, help="actor staleness in learner updates (default 300)")
    demo.add_argument("--updates", type=int, default=900, help="learner updates per run (default 900)")
    demo.add_argument("--seeds", type=int, default=1, help="seeds per method (default 1)")
    demo.add_argument("--out", default="dg_envs_demo", help="output folder (default ./dg_envs_demo)")
    demo.add_argument("--tensorboard", default=None, metavar="DIR", help="also log every run to TensorBoard")
    demo.set_defaults(func=_demo)

    exp = sub.add_parser("experiment", help="run one of the papers' experiments")
    exp.add_argument("name", choices=sorted(EXPERIMENTS))
    exp.add_argument("--quick", action="store_true", help="the minutes-long variant")
    exp.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the config's, 3)")
    exp.add_argument("--out", default=str(RESULTS_DIR), help=f"output folder (default {RESULTS_DIR})")
    exp.add_argument("--tensorboard", default=None, metavar="DIR", help="also log every run to TensorBoard")
    exp.add_argument("--jobs", type=int, default=None, metavar="N",
                     help="training runs in parallel, one process each (experiments that support it: mujoco)")
    exp.set_defaults(func=_experiment)

    bench = sub.add_parser("bench", help="speed benchmarks, as ratios measured in one run")
    bench.add_argument("--quick", action="store_true", help="fewer repeats")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dg-envs`` console script."""
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
