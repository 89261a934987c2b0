"""The dg-envs command: the demo, the papers' experiments and the speed benchmarks.

Every option is checked before any training starts: a bad number or output folder is a usage
error (exit code 2) that names the option.

>>> from dg_envs.cli import build_parser
>>> build_parser().parse_args(["experiment", "bandit-geometry", "--quick"]).quick
True
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

from dg_envs.experiments import EXPERIMENTS
from dg_envs.experiments.common import RESULTS_DIR, prepare_out_dir


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1 (argparse's usage error names the option otherwise).

    >>> positive_int("3")
    3
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an integer >= 1, got '0'
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def setting(text: str) -> tuple[str, object]:
    """An argparse ``type`` for ``--set NAME=VALUE``: the value read as a Python literal, else kept as text.

    >>> setting("total_updates=10000"), setting("lags=(0, 1000)"), setting("source=offline")
    (('total_updates', 10000), ('lags', (0, 1000)), ('source', 'offline'))
    >>> setting("10000")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be NAME=VALUE (a setting of the experiment's Config), got '10000'
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE (a setting of the experiment's Config), got {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return name.strip(), parsed


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


def _experiment_overrides(args: argparse.Namespace) -> dict:
    overrides = dict(args.set)
    if args.jobs is not None:
        overrides["jobs"] = args.jobs
    return overrides


def _experiment(args: argparse.Namespace) -> None:
    from dg_envs.experiments import report_experiment, run_experiment

    if args.report:
        print(report_experiment(args.name, out_dir=args.out))
        print(f"\nWritten to {Path(args.out) / args.name}.md / .png")
        return
    ray = False if args.ray is None else (args.ray or True)  # "--ray" alone: a local cluster
    table = run_experiment(args.name, quick=args.quick, seeds=args.seeds, out_dir=args.out,
                           tensorboard_log=args.tensorboard, ray=ray, **_experiment_overrides(args))
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
    demo.add_argument("--lag", type=positive_int, default=300,
                      help="actor staleness in learner updates, >= 1 (default 300)")
    demo.add_argument("--updates", type=positive_int, default=900, help="learner updates per run, >= 1 (default 900)")
    demo.add_argument("--seeds", type=positive_int, default=1, help="seeds per method, >= 1 (default 1)")
    demo.add_argument("--out", default="dg_envs_demo", help="output folder (default ./dg_envs_demo)")
    demo.add_argument("--tensorboard", default=None, metavar="DIR", help="also log every run to TensorBoard")
    demo.set_defaults(func=_demo, usage_error=demo.error)

    exp = sub.add_parser("experiment", help="run one of the papers' experiments")
    exp.add_argument("name", choices=sorted(EXPERIMENTS))
    exp.add_argument("--quick", action="store_true", help="the minutes-long variant")
    exp.add_argument("--seeds", type=positive_int, default=None,
                     help="number of seeds, >= 1 (default: the config's, 3)")
    exp.add_argument("--out", default=str(RESULTS_DIR), help=f"output folder (default {RESULTS_DIR})")
    exp.add_argument("--tensorboard", default=None, metavar="DIR", help="also log every run to TensorBoard")
    exp.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                     help="training runs in parallel, one process each, >= 1 (every experiment but bandit-geometry)")
    exp.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                     help="run the training runs as Ray tasks, one CPU each: on a local cluster, or on the "
                          "cluster at ADDRESS (HEAD:6379, after `ray start --head` there); same records as "
                          "--jobs, which it replaces (needs the rllib extra)")
    exp.add_argument("--set", type=setting, action="append", default=[], metavar="NAME=VALUE",
                     help="change one setting of the experiment's Config, a Python literal "
                          "(e.g. --set total_updates=10000 --set 'lags=(0, 1000)'); repeatable. A sweep stopped "
                          "part-way resumes when run again with the same settings")
    exp.add_argument("--report", action="store_true",
                     help="run nothing: write the page from every record already in the output folder (a sweep "
                          "still going elsewhere, or runs of several partial sweeps)")
    exp.set_defaults(func=_experiment, usage_error=exp.error)

    bench = sub.add_parser("bench", help="speed benchmarks, as ratios measured in one run")
    bench.add_argument("--quick", action="store_true", help="fewer repeats")
    bench.set_defaults(func=_bench, usage_error=bench.error)
    return parser


def check_args(args: argparse.Namespace) -> None:
    """What ``type=`` cannot check, before any training: ``--jobs`` and ``--set`` against the
    experiment's settings (their names; the values are checked when the sweep starts), and the
    output folders (created, and a probe file written and deleted). A usage error naming the
    option otherwise."""
    if args.command == "experiment" and args.report:
        given = [name for name, value in (("--quick", args.quick), ("--seeds", args.seeds), ("--jobs", args.jobs),
                                          ("--ray", args.ray), ("--set", args.set), ("--tensorboard", args.tensorboard))
                 if value not in (None, False, [])]
        if given:
            args.usage_error(f"argument --report: not allowed with {', '.join(given)} (it runs nothing; only --out "
                             "applies)")
        records = Path(args.out) / f"{args.name}.jsonl"
        if not records.is_file() or not records.stat().st_size:
            args.usage_error(f"argument --report: {records} holds no records of {args.name}: run the experiment first")
    if args.command == "experiment" and args.ray is not None:
        if args.jobs is not None:
            args.usage_error("argument --ray: not allowed with --jobs (Ray runs as many runs at once as the cluster "
                             "has CPUs)")
        from dg_envs.experiments import make_config

        if not hasattr(make_config(args.name), "jobs"):
            args.usage_error(f"argument --ray: {args.name} does not run independent runs side by side "
                             "(it has no jobs setting)")
    if args.command == "experiment" and (args.jobs is not None or args.set):
        from dg_envs.experiments import make_config

        jobs = {"jobs": args.jobs} if args.jobs is not None else {}
        checks = [("--jobs", jobs), ("--set", _experiment_overrides(args))]
        for option, overrides in checks:
            try:
                make_config(args.name, quick=args.quick, **overrides)
            except ValueError as error:
                args.usage_error(f"argument {option}: {error}")
    for option in ("out", "tensorboard"):
        if getattr(args, option, None) is not None:
            try:
                prepare_out_dir(getattr(args, option), name=f"argument --{option}")
            except ValueError as error:
                args.usage_error(str(error))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dg-envs`` console script."""
    args = build_parser().parse_args(argv)
    check_args(args)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
