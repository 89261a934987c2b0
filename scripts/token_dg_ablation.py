"""Which friction undoes the reference DG on token reversal? All four frictions, leaving one out at a time.

Issue 12. In ``dg-envs experiment token-reversal-paper`` (docs/results/token-reversal-paper.md),
the reference DG (:class:`~dg_envs.algos.DGPG`) with all four frictions at once gets to a
sequence error of ~0.25 after 500 updates and then *rises* to 0.40-0.50 by 1,000, while the
reference PPO (ratio against the reported probability) goes on down to 0.02-0.06. This script
runs the same DG run (same settings, seeds and evaluation as the sweep's ``all`` runs) with one
friction left out at a time; the friction whose absence removes the rise is the one DG does not
withstand at these rates.

    OMP_NUM_THREADS=1 python scripts/token_dg_ablation.py --seeds 0 --jobs 2

Records (one JSON line per run, resumed by ``(without, seed, method)``) go to
``docs/results/token-reversal-dg-ablation.jsonl``; ``--report`` prints the curves as a table.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RECORDS = Path(__file__).resolve().parents[1] / "docs" / "results" / "token-reversal-dg-ablation.jsonl"


def run(without: str, seed: int, method: str, total_updates: int) -> dict:
    """One run of the sweep's ``all`` setting without the friction ``without``."""
    from dg_envs.experiments import token_reversal_paper as trp
    from dg_envs.experiments.common import use_one_thread

    use_one_thread()
    config = trp.Config(methods=(method,), settings=("all",), seeds=(seed,), total_updates=total_updates)
    config.frictions.pop(without)
    job = trp.grid(config)[0]
    return {"without": without, "seed": seed, "method": method, "frictions": job["settings"]["frictions"],
            **trp.run_job(job, config)}


def load() -> list[dict]:
    return [json.loads(line) for line in RECORDS.open()] if RECORDS.exists() else []


def report(records: list[dict]) -> str:
    """Sequence error at every evaluation, one row per run."""
    points = [u for u, _ in records[0]["curve"]]
    head = "| method | without | seed | " + " | ".join(str(u) for u in points) + " |"
    rows = [f"| {r['method']} | {r['without']} | {r['seed']} | " + " | ".join(f"{e:.3f}" for _, e in r["curve"]) + " |"
            for r in records]
    return "\n".join([head, "|" + "---|" * (len(points) + 3)] + rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--without", nargs="+", default=["stale", "bug", "reward", "discovery"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--method", default="DG")
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="print the recorded curves and stop")
    args = parser.parse_args()
    if args.report:
        print(report(load()))
        return
    done = {(r["without"], r["seed"], r["method"]) for r in load()}
    todo = [(w, s) for w in args.without for s in args.seeds if (w, s, args.method) not in done]
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, w, s, args.method, args.updates) for w, s in todo]
        for future in futures:
            record = future.result()
            with RECORDS.open("a") as f:
                f.write(json.dumps(record, default=float) + "\n")
            print(record["without"], record["seed"], record["sequence_error"], flush=True)


if __name__ == "__main__":
    main()
