"""Why does DGPPO stay flat with an expert's discoveries? The gate, measured on the discovery samples.

Issue 14, item 4. The ``discovery`` sweep of ``dg-envs experiment mujoco`` (docs/results/mujoco.md):
on Hopper-v5, with probability p=0.05 a step's action is the greedy action of a saved expert PPO
(``RareDiscovery(p=0.05, oracle=PolicyOracle.load("docs/results/mujoco-expert-Hopper-v5.zip"))``);
PPO and DGPPO then train on the executed action (the buffer row relabelled: action := the expert's,
``old_log_prob`` := the rollout policy's log-prob of it, ``behavior_log_prob`` := 0.0, the report).

This script rebuilds those runs exactly (Zoo settings of ``dgppo.yml``, the experiment's seeding,
so an unmeasured variation reproduces the sweep's records) and, at every ``train()``, measures each
minibatch's policy-loss inputs separately on the **discovery rows** (those whose step info has
``"discovery"`` in ``info["frictions"]``; they are also exactly the relabelled rows, checked) and on
the learner's **own rows**:

* ``A``: the normalised advantage the gate and the loss see (and ``A>0``: the fraction positive);
* ``l``: the surprisal of the kind the gate uses (Box: ``entropy_centered``, ``-log pi - H``, nats);
* ``chi = A * l`` (delight) and ``w = sigmoid(chi / eta)`` (the gate; for PPO: the gate DGPPO would
  apply, eta=1, for comparison; PPO's actual weight is 1);
* ``r = pi / pi_old`` (PPO's ratio against the buffer's, i.e. relabelled, ``old_log_prob``) as
  ``|log r|``, and ``clip``: the fraction whose gradient PPO's clip zeroes
  (``A > 0 and r > 1 + eps`` or ``A < 0 and r < 1 - eps``);
* ``mass``: the share of the policy-gradient mass the discovery rows carry,
  ``sum_disc |w A| / sum_all |w A|`` (w = 1 for PPO), and ``mass_eff`` the same with each row's
  actual surrogate gradient factor ``|w A r| * (not clipped)``.

Means are over every minibatch and epoch of an update, then over the updates of a range
(early/middle/late thirds). Hooked through :meth:`WeightedPolicyGradientMixin._weighted_log_prob`
(measure, then defer), and the minibatch's buffer indices through the buffer's ``_get_samples``;
nothing in the library changes, and no random number is drawn, so the runs are the sweep's runs.

    OMP_NUM_THREADS=1 python scripts/discovery_gate.py --methods PPO DGPPO --seeds 0 1 --jobs 2
    OMP_NUM_THREADS=1 python scripts/discovery_gate.py --methods DGPPO:eta=4 --seeds 0 1 --jobs 2

A method is ``PPO``, ``DGPPO`` or ``DGPPO:key=value,...`` (DGPPO keyword arguments: ``eta=4``,
``surprisal=clipped``, ``box_gate=mean_only``). ``--out`` writes one JSON record per run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

EXPERT = Path(__file__).resolve().parent.parent / "docs" / "results" / "mujoco-expert-Hopper-v5.zip"
METRICS = ("n", "A", "A>0", "l", "chi", "w", "|log r|", "clip")


def _classes():
    """The measured PPO and DGPPO (built here so worker processes import torch themselves)."""
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnvWrapper

    from dg_envs.algos import DGPPO
    from dg_envs.algos.gates import dg_gate
    from dg_envs.algos.relabel import BehaviorRolloutBuffer
    from dg_envs.algos.weighting import WeightedPolicyGradientMixin
    from dg_envs.wrappers.protocol import DISCOVERY, EXECUTED_ACTION

    class IndexedBuffer(BehaviorRolloutBuffer):
        """Remembers the buffer indices of the last minibatch it handed out."""

        def _get_samples(self, batch_inds, env=None):
            self.last_inds = batch_inds
            return super()._get_samples(batch_inds, env)

    class Recorder(VecEnvWrapper):
        """Keeps each step's infos (outermost, beside the mixin's own recorder)."""

        def __init__(self, venv):
            super().__init__(venv)
            self.infos = []

        def reset(self):
            return self.venv.reset()

        def step_wait(self):
            out = self.venv.step_wait()
            self.infos.append(out[3])
            return out

    class Measured:
        """Mixin: per update, the gate's inputs on discovery and own rows (``self.measurements``)."""

        measure_eta = 1.0  # PPO: the gate DGPPO's default would apply

        def collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps):
            recorder = Recorder(env)
            result = super().collect_rollouts(recorder, callback, rollout_buffer, n_rollout_steps)
            infos = recorder.infos[: rollout_buffer.buffer_size]
            disc = np.array([[DISCOVERY in info.get("frictions", ()) for info in step] for step in infos])
            relabelled = np.array([[EXECUTED_ACTION in info for info in step] for step in infos])
            if not (disc == relabelled).all():  # only the discovery friction is on: they must coincide
                raise RuntimeError("discovery rows and relabelled rows differ")
            self._disc_flat = disc.swapaxes(0, 1).reshape(-1)  # the buffer's swap_and_flatten order
            self._sums = defaultdict(float)
            return result

        def _weighted_log_prob(self, prepared, advantages, log_prob, surprise, actions):
            with th.no_grad():
                disc = th.as_tensor(self._disc_flat[self.rollout_buffer.last_inds])
                adv = advantages.detach()
                eta = getattr(self, "eta", self.measure_eta)
                w = dg_gate(adv, -surprise, eta=eta)  # under a routed box_gate: the mean's gate
                log_r = log_prob.detach() - prepared.batch.old_log_prob
                r = th.exp(log_r)
                eps = self.clip_range(self._current_progress_remaining)
                clipped = ((adv > 0) & (r > 1 + eps)) | ((adv < 0) & (r < 1 - eps))
                weight = w if isinstance(self, DGPPO) else th.ones_like(w)
                mass, eff = (weight * adv).abs(), (weight * adv * r).abs() * (~clipped)
                s = self._sums
                for name, rows in (("disc", disc), ("own", ~disc)):
                    k = int(rows.sum())
                    s[f"{name}:n"] += k
                    if k == 0:
                        continue
                    for key, v in (("A", adv), ("A>0", (adv > 0).float()), ("l", surprise), ("chi", adv * surprise),
                                   ("w", w), ("|log r|", log_r.abs()), ("clip", clipped.float()),
                                   ("mass", mass), ("mass_eff", eff)):
                        s[f"{name}:{key}"] += float(v[rows].sum())
            return super()._weighted_log_prob(prepared, advantages, log_prob, surprise, actions)

        def train(self):
            super().train()
            s = self._sums
            measurements = self.__dict__.setdefault("measurements", [])
            record = {"update": len(measurements) + 1,
                      "std": float(self.policy.log_std.detach().exp().mean()),
                      "ep_return": float(np.mean([e["r"] for e in self.ep_info_buffer])) if self.ep_info_buffer else None}
            for name in ("disc", "own"):
                n = s[f"{name}:n"]
                record[f"{name}:n"] = n
                for key in METRICS[1:]:
                    record[f"{name}:{key}"] = s[f"{name}:{key}"] / n if n else None
            total, total_eff = s["disc:mass"] + s["own:mass"], s["disc:mass_eff"] + s["own:mass_eff"]
            record["mass"] = s["disc:mass"] / total if total else None
            record["mass_eff"] = s["disc:mass_eff"] / total_eff if total_eff else None
            record["disc_fraction"] = s["disc:n"] / max(1, s["disc:n"] + s["own:n"])
            measurements.append(record)

    class MeasuredPPO(Measured, WeightedPolicyGradientMixin, PPO):
        """SB3's PPO on the executed action, through the gate's hook with no weight (exactly RelabelledPPO)."""

    class MeasuredDGPPO(Measured, DGPPO):
        """DGPPO, measured."""

    return MeasuredPPO, MeasuredDGPPO, IndexedBuffer


def parse_method(method: str) -> tuple[str, dict]:
    """``"DGPPO:eta=4,box_gate=mean_only"`` -> ``("DGPPO", {"eta": 4.0, "box_gate": "mean_only"})``."""
    name, _, options = method.partition(":")
    kwargs = {}
    for item in filter(None, options.split(",")):
        key, value = item.split("=")
        try:
            kwargs[key] = float(value)
        except ValueError:
            kwargs[key] = value
    return name, kwargs


def run(method: str, seed: int, timesteps: int | None, p: float, eval_points: int) -> dict:
    """One discovery run as ``dg_envs.experiments.mujoco.run_job`` makes it, measured."""
    from functools import partial

    import torch

    from dg_envs.experiments import mujoco
    from dg_envs.experiments.training import RunSpec, train_run
    from dg_envs.wrappers import PolicyOracle

    torch.set_num_threads(1)
    MeasuredPPO, MeasuredDGPPO, IndexedBuffer = _classes()
    name, options = parse_method(method)
    if name == "DGPPO":
        options.setdefault("box_gate", "sample")  # DGPPO's default when docs/results/discovery-gate.md was made
    params = mujoco.hyperparams(name, "Hopper-v5")
    params.pop("policy"), params.pop("n_envs")
    zoo_timesteps = params.pop("n_timesteps")
    total = zoo_timesteps if timesteps is None else timesteps
    n_steps = params.pop("n_steps")
    updates = max(total // n_steps, 1)
    algo = {"PPO": MeasuredPPO, "DGPPO": MeasuredDGPPO}[name]
    frictions = {"discovery": {"p": p, "oracle": PolicyOracle.load(EXPERT)}}
    spec = RunSpec(algo=algo, env_id="Hopper-v5", seed=seed, total_updates=updates, n_steps=n_steps,
                   frictions=frictions, algo_kwargs={**params, **options, "rollout_buffer_class": IndexedBuffer},
                   eval_every=max(updates // eval_points, 1))
    result = train_run(spec, partial(mujoco.mean_return, env_id="Hopper-v5", episodes=5), keep_model=True)
    model = result.pop("model")
    return {"method": method, "seed": seed, "timesteps": updates * n_steps, "return": result["final"],
            "curve": [(u * n_steps, s) for u, s in result["curve"]], "seconds": result["seconds"],
            "updates": model.measurements}


def _fmt(x, spec=".3g") -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def summarise(record: dict) -> str:
    """The per-range table of one run."""
    ups = record["updates"]
    thirds = np.array_split(np.arange(len(ups)), 3)
    lines = [f"### {record['method']}, seed {record['seed']}: greedy return {record['return']:.1f} "
             f"(curve {', '.join(f'{s:.0f}' for _, s in record['curve'])}), {record['seconds']:.0f} s",
             "", "| updates | rows | " + " | ".join(METRICS[1:]) + " | mass | mass_eff | std | ep_return |",
             "|---" * (len(METRICS) + 6) + "|"]
    for idx in thirds:
        if not len(idx):
            continue
        sel = [ups[i] for i in idx]

        def mean(key):
            vals = [u[key] for u in sel if u.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        span = f"{sel[0]['update']}-{sel[-1]['update']}"
        for name in ("disc", "own"):
            cells = [_fmt(mean(f"{name}:{k}")) for k in METRICS[1:]]
            extra = [_fmt(mean("mass")), _fmt(mean("mass_eff")), _fmt(mean("std")), _fmt(mean("ep_return"), ".0f")] \
                if name == "disc" else ["", "", "", ""]
            lines.append(f"| {span} | {name} ({mean(name + ':n') / 10:.0f}/upd) | " + " | ".join(cells + extra) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["PPO", "DGPPO"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--timesteps", type=int, default=None, help="default: the Zoo's 100k (97 updates)")
    parser.add_argument("--p", type=float, default=0.05, help="discovery probability (the experiment's 0.05)")
    parser.add_argument("--eval-points", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="append one JSON record per run")
    args = parser.parse_args()

    runs = [(m, s) for m in args.methods for s in args.seeds]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, m, s, args.timesteps, args.p, args.eval_points) for m, s in runs]
        records = [f.result() for f in futures]
    print("rows/upd: rows per update, counted once per epoch (10 epochs); the buffer holds 1024 per update\n")
    for record in records:
        print(summarise(record), end="\n\n")
        if args.out is not None:
            with args.out.open("a") as f:
                f.write(json.dumps(record) + "\n")
    print(f"{len(runs)} runs in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
