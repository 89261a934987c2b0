"""Why does the reference Kondo 3% fail on token reversal under reward corruption alone? What it keeps.

Issue 12. In the ``token-reversal-paper`` sweep (H=10, M=2, 1,000 updates, 3 seeds) the
reference Kondo gate (:class:`~dg_envs.algos.KondoPG`, top 3% of tokens by delight
``A * -log pi``) solves the task clean, with the stale actor, the landmine bug or discoveries
alone, but with 10% coin rewards alone it ends at sequence error ~1.0 where DG reaches 0.000.
This script trains the same run and, at every update, measures what the top 3% consists of:
the share of kept tokens from answers whose reward the coin changed (detected by recomputing
the true reward from the prompt and the answer: a coin that happens to equal the true reward is
not counted, which only matters for perfect or all-wrong answers), the share of those the coin
raised, and the share of kept tokens that are *wrong* tokens with a positive advantage (the
update pushes them up). Beside it, DG's soft gate on the same batch: the share of its total
positive weight ``sigmoid(A * -log pi) * A`` that lands on wrong tokens.

    OMP_NUM_THREADS=1 python scripts/token_kondo_reward.py --setting reward --updates 300 --seed 0

One JSON line per evaluation point goes to ``docs/results/token-reversal-kondo-reward.jsonl``
(``--report`` prints them as a table).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch as th

from dg_envs.algos.losses import kondo_keep
from dg_envs.algos.reference import KondoPG

RECORDS = Path(__file__).resolve().parents[1] / "docs" / "results" / "token-reversal-kondo-reward.jsonl"


class KeepProbe(KondoPG):
    """KondoPG that also measures, at every update, which tokens its gate keeps."""

    probe: list[dict]

    def _policy_loss(self, batch):
        out = super()._policy_loss(batch)
        self.probe.append(kept_tokens(self, out[1], batch))
        return out


def kept_tokens(model: KondoPG, log_prob: th.Tensor, batch) -> dict:
    """Shares of the kept tokens (and of DG's positive weight) by row corruption and token correctness."""
    length = model.n_steps
    obs = batch.observations.reshape(-1, length, batch.observations.shape[-1]).long()
    actions = batch.actions.reshape(-1, length).long()
    target = obs[:, 0, :length].flip(-1)  # reverse_copy
    wrong = actions != target
    true_reward = (~wrong).float().mean(1)  # kappa 1, bag reward: the fraction of tokens correct
    received = batch.returns.reshape(-1, length)[:, 0]  # undiscounted return of the answer
    corrupted = (received - true_reward).abs() > 1e-4
    raised = received > true_reward + 1e-4
    adv = batch.advantages.reshape(-1, length)
    lp = log_prob.reshape(-1, length)
    keep = kondo_keep(adv.reshape(-1), lp.reshape(-1), model.keep_fraction).reshape(-1, length)
    row = corrupted[:, None].expand_as(adv)
    kept = float(keep.sum())
    dg_weight = (th.sigmoid(adv * -lp) * adv).clamp(min=0)
    return {
        "corrupted_rows": float(corrupted.float().mean()),
        "kept_fraction": kept / adv.numel(),
        "kept_from_corrupted": float((keep & row).sum()) / kept,
        "kept_from_raised": float((keep & raised[:, None]).sum()) / kept,
        "kept_wrong_positive": float((keep & wrong & (adv > 0)).sum()) / kept,
        "dg_positive_weight_on_wrong": float(dg_weight[wrong].sum() / dg_weight.sum().clamp(min=1e-12)),
        "dg_positive_weight_from_corrupted": float(dg_weight[row].sum() / dg_weight.sum().clamp(min=1e-12)),
    }


def run(setting: str, seed: int, updates: int, every: int, eval_episodes: int) -> list[dict]:
    from dg_envs.experiments import token_reversal_paper as trp
    from dg_envs.experiments.common import use_one_thread
    from dg_envs.experiments.training import make_run_env, sequence_error

    use_one_thread()
    config = trp.Config(methods=("Kondo 3%",), settings=(setting,), seeds=(seed,), total_updates=updates)
    spec = trp.job_spec(trp.grid(config)[0], config)
    venv = make_run_env(spec)
    model = KeepProbe(spec.policy, venv, n_steps=spec.n_steps, seed=seed, **spec.algo_kwargs)
    model.probe = []
    evaluate = sequence_error({"length": config.length, "vocab_size": config.vocab_size}, episodes=eval_episodes)
    records = []
    steps = spec.n_envs * spec.n_steps
    for done in range(every, updates + 1, every):
        model.learn(every * steps, reset_num_timesteps=False)
        window = model.probe[-every:]
        summary = {k: float(np.mean([p[k] for p in window])) for k in window[0]}
        records.append({"setting": setting, "seed": seed, "updates": done, "sequence_error": evaluate(model), **summary})
        print(json.dumps(records[-1]), flush=True)
    return records


def report(records: list[dict]) -> str:
    cols = ["setting", "seed", "updates", "sequence_error", "corrupted_rows", "kept_fraction", "kept_from_corrupted",
            "kept_from_raised", "kept_wrong_positive", "dg_positive_weight_on_wrong", "dg_positive_weight_from_corrupted"]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)
    rows = ["| " + " | ".join(f"{r.get(c):.3g}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols) + " |"
            for r in records]
    return "\n".join([head] + rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="reward")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--eval-episodes", type=int, default=1000)
    parser.add_argument("--report", action="store_true", help="print the recorded rows and stop")
    args = parser.parse_args()
    if not args.report:
        records = run(args.setting, args.seed, args.updates, args.every, args.eval_episodes)
        with RECORDS.open("a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    print(report([json.loads(line) for line in RECORDS.open()]))


if __name__ == "__main__":
    main()
