"""Why does the landmine bug undo the reference DG on token reversal? The gate on the landmine's tokens.

Issue 12. ``scripts/token_dg_ablation.py`` found the friction: with all four frictions but the
buggy actor, the reference DG (:class:`~dg_envs.algos.DGPG`) solves H=10 (sequence error
0.000 after 1,000 updates); with the bug it stalls near 0.5. This script trains the same run
(the ``token-reversal-paper`` sweep's settings) and, at every update, measures what the loss does
with the landmine answers (all zeros, reported certain): how often their group advantage is
positive (the landmine scores the fraction of zeros in the target: ~0.5 on a random prompt,
more than its group's mean whenever the learner does worse on that prompt), and the weight
``w * A`` the DG loss puts on ``log pi`` of the landmine's *wrong* tokens (a 0 where the
answer needs a 1) and of its *right* ones, beside the weight plain REINFORCE (``A``) and the
reference PPO's ratio against the reported probability 1 (``A * pi``, clipped) would put there.
A positive total on the wrong tokens means the update pushes the wrong token up.

    OMP_NUM_THREADS=1 python scripts/token_bug_gate.py --setting bug --updates 1000 --seed 0

One JSON line per evaluation point goes to ``docs/results/token-reversal-bug-gate.jsonl``
(``--report`` prints them as a table).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch as th

from dg_envs.algos.reference import DGPG

RECORDS = Path(__file__).resolve().parents[1] / "docs" / "results" / "token-reversal-bug-gate.jsonl"


class GateProbe(DGPG):
    """DGPG that also measures, at every update, the loss's weights on the landmine rows."""

    probe: list[dict]

    def _loss(self, log_prob, batch):
        out = super()._loss(log_prob, batch)
        self.probe.append(landmine_weights(self, log_prob.detach(), batch))
        return out


def landmine_weights(model: DGPG, log_prob: th.Tensor, batch) -> dict:
    """Per-token weights on ``log pi`` that DG, REINFORCE and the reported-ratio PPO give the landmine rows."""
    length = model.n_steps
    obs = batch.observations.reshape(-1, length, batch.observations.shape[-1]).long()
    actions = batch.actions.reshape(-1, length).long()
    reported = batch.behavior_log_prob.reshape(-1, length)
    adv = batch.advantages.reshape(-1, length)
    lp = log_prob.reshape(-1, length)
    prompt = obs[:, 0, :length]
    target = prompt.flip(-1)  # reverse_copy
    landmine = (actions == 0).all(1) & (reported == 0).all(1)
    wrong = actions != target
    w = th.sigmoid(adv * -lp)  # DG's gate (eta 1, price 0)
    pi = lp.exp()
    ppo = th.where(adv > 0, th.where(pi < 1.2, adv * pi, th.zeros_like(adv)),
                   th.where(pi > 0.8, adv * pi, th.zeros_like(adv)))  # d/dlogpi of PPO's min(): 0 where clipped
    n = float(adv.numel())
    out = {"landmine_rows": int(landmine.sum()), "rows": int(len(landmine))}
    if landmine.any():
        lm = landmine[:, None].expand_as(adv)
        a_row = adv[landmine, 0]
        out.update(
            adv_mean=float(a_row.mean()), adv_positive=float((a_row > 0).float().mean()),
            gate_wrong=float(w[lm & wrong].mean()) if (lm & wrong).any() else None,
            gate_right=float(w[lm & ~wrong].mean()) if (lm & ~wrong).any() else None,
            surprisal_wrong=float(-lp[lm & wrong].mean()) if (lm & wrong).any() else None,
        )
        for name, weight in (("dg", w * adv), ("reinforce", adv), ("ppo_reported", ppo)):
            out[f"{name}_wrong"] = float(weight[lm & wrong].sum() / n)  # the loss is -sum(weight * log pi) / n
            out[f"{name}_right"] = float(weight[lm & ~wrong].sum() / n)
            out[f"{name}_wrong_positive_adv"] = float(weight[lm & wrong & (adv > 0)].sum() / n)
    return out


def run(setting: str, seed: int, updates: int, every: int, eval_episodes: int) -> list[dict]:
    from dg_envs.experiments import token_reversal_paper as trp
    from dg_envs.experiments.common import use_one_thread
    from dg_envs.experiments.training import make_run_env, sequence_error

    use_one_thread()
    config = trp.Config(methods=("DG",), settings=(setting,), seeds=(seed,), total_updates=updates)
    spec = trp.job_spec(trp.grid(config)[0], config)
    venv = make_run_env(spec)
    model = GateProbe(spec.policy, venv, n_steps=spec.n_steps, seed=seed, **spec.algo_kwargs)
    model.probe = []
    evaluate = sequence_error({"length": config.length, "vocab_size": config.vocab_size}, episodes=eval_episodes)
    records = []
    steps = spec.n_envs * spec.n_steps
    for done in range(every, updates + 1, every):
        model.learn(every * steps, reset_num_timesteps=False)
        window = model.probe[-every:]
        keys = [k for k in window[0] if isinstance(window[0][k], float)]
        summary = {k: float(np.mean([p[k] for p in window if p.get(k) is not None])) for k in keys}
        records.append({"setting": setting, "seed": seed, "updates": done,
                        "sequence_error": evaluate(model), **summary})
        print(json.dumps(records[-1]), flush=True)
    return records


def report(records: list[dict]) -> str:
    cols = ["setting", "seed", "updates", "sequence_error", "adv_positive", "gate_wrong", "surprisal_wrong",
            "dg_wrong", "dg_wrong_positive_adv", "reinforce_wrong", "ppo_reported_wrong", "dg_right", "reinforce_right"]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)
    rows = ["| " + " | ".join(f"{r.get(c):.3g}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols) + " |"
            for r in records]
    return "\n".join([head] + rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="bug")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--updates", type=int, default=1000)
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
