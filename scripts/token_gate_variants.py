"""Does the reference DG fail under the landmine because its gate cannot act? Interventions on the gate.

Issue 12. Under the landmine bug alone (10% of answers all zeros, reported as certain; H=10,
M=2, the ``token-reversal-paper`` sweep's setting) the reference DG (:class:`~dg_envs.algos.DGPG`,
eta 1, each token gated by its own surprisal) never learns the task. This script trains the same
run with one thing changed at a time and records the greedy sequence error every 50 updates and
the greedy answers to a few fixed prompts at the end:

* ``DG``: the reference DG, as the sweep runs it;
* ``PG``: no gate (eta = inf: REINFORCE without a ratio, at half the step);
* ``DG no-ortho``: PyTorch's default initialisation instead of SB3's orthogonal one;
* ``DG eta 0.1`` / ``DG eta 0``: a sharper token gate (eta 0 is the hard gate ``1{A > 0}``);
* ``DG (answer)``: every token gated by its answer's surprisal (``surprisal="episode"``).

    OMP_NUM_THREADS=1 python scripts/token_gate_variants.py --updates 300 --seed 0

One JSON line per run goes to ``docs/results/token-reversal-gate-variants.jsonl`` (resumed by
``(variant, setting, seed, updates)``); ``--report`` prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

RECORDS = Path(__file__).resolve().parents[1] / "docs" / "results" / "token-reversal-gate-variants.jsonl"

#: Variant -> (DGPG keyword arguments, policy_kwargs additions).
VARIANTS = {
    "DG": ({}, {}),
    "PG": ({"eta": math.inf}, {}),
    "DG no-ortho": ({}, {"ortho_init": False}),
    "DG eta 0.1": ({"eta": 0.1}, {}),
    "DG eta 0": ({"eta": 0.0}, {}),
    "DG (answer)": ({"surprisal": "episode"}, {}),
}


def greedy_answers(model, length: int, n: int, seed: int) -> tuple[float, list[str]]:
    """Sequence error on ``n`` clean prompts, and ``prompt -> answer`` strings for the first 6."""
    import gymnasium as gym

    envs = gym.make_vec("dg_envs/TokenReversal-v0", num_envs=n, vectorization_mode="vector_entry_point", length=length)
    obs, _ = envs.reset(seed=seed)
    prompts = obs[:, :length].copy()
    answers = []
    for _ in range(length):
        actions, _ = model.predict(obs, deterministic=True)
        answers.append(actions)
        obs, _, _, _, info = envs.step(actions)
    envs.close()
    answers = np.array(answers).T
    shown = ["".join(map(str, p)) + " -> " + "".join(map(str, a)) for p, a in zip(prompts[:6], answers[:6])]
    return float(np.mean(~info["perfect"])), shown


def run(variant: str, setting: str, seed: int, updates: int, every: int, eval_episodes: int) -> dict:
    from dg_envs.algos import DGPG
    from dg_envs.experiments import token_reversal_paper as trp
    from dg_envs.experiments.common import use_one_thread
    from dg_envs.experiments.paper import merge
    from dg_envs.experiments.training import make_run_env

    use_one_thread()
    config = trp.Config(methods=("DG",), settings=(setting,), seeds=(seed,), total_updates=updates)
    spec = trp.job_spec(trp.grid(config)[0], config)
    dg_kwargs, policy_kwargs = VARIANTS[variant]
    kwargs = merge(spec.algo_kwargs, {**dg_kwargs, "policy_kwargs": policy_kwargs})
    model = DGPG(spec.policy, make_run_env(spec), n_steps=spec.n_steps, seed=seed, **kwargs)
    start, curve = time.perf_counter(), []
    for done in range(every, updates + 1, every):
        model.learn(every * spec.n_envs * spec.n_steps, reset_num_timesteps=False)
        curve.append((done, greedy_answers(model, config.length, eval_episodes, 10_000)[0]))
    error, answers = greedy_answers(model, config.length, eval_episodes, 10_000)
    return {"variant": variant, "setting": setting, "seed": seed, "updates": updates, "sequence_error": error,
            "curve": curve, "answers": answers, "eval_episodes": eval_episodes,
            "seconds": time.perf_counter() - start}


def load() -> list[dict]:
    return [json.loads(line) for line in RECORDS.open()] if RECORDS.exists() else []


def report(records: list[dict]) -> str:
    head = "| variant | setting | seed | updates | sequence error (curve every 50) | greedy answers (prompt -> answer) |"
    rows = [f"| {r['variant']} | {r['setting']} | {r['seed']} | {r['updates']} | "
            + " ".join(f"{e:.3f}" for _, e in r["curve"]) + " | " + "; ".join(r["answers"][:3]) + " |" for r in records]
    return "\n".join([head, "|---|---|---|---|---|---|"] + rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--setting", default="bug", help="a token-reversal-paper setting (default: the bug alone)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--eval-episodes", type=int, default=300)
    parser.add_argument("--report", action="store_true", help="print the recorded runs and stop")
    args = parser.parse_args()
    if not args.report:
        done = {(r["variant"], r["setting"], r["seed"], r["updates"]) for r in load()}
        for variant in args.variants:
            if (variant, args.setting, args.seed, args.updates) in done:
                continue
            record = run(variant, args.setting, args.seed, args.updates, args.every, args.eval_episodes)
            with RECORDS.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(variant, record["sequence_error"], flush=True)
    print(report(load()))


if __name__ == "__main__":
    main()
