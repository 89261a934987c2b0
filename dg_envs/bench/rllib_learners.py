"""Speed of the RLlib learners (:mod:`dg_envs.rllib.learners`), as ratios measured in one run.

What is timed is one learner's ``Learner.update`` on train batches already built (synthetic,
seeded: no env, no env runners, no Ray cluster), so the ratios are the learners' own: their
losses, forward and backward passes, and RLlib's per-step work (optimizer step, gradient
checks, metrics). Every learner of a comparison updates on the same batches.

1. **DG-APPO overhead**: updates/s of :class:`~dg_envs.rllib.learners.DGAPPOTorchLearner` vs
   APPO, :class:`~dg_envs.rllib.learners.APPOLagTorchLearner` (RLlib's APPO loss with our
   policy-lag metrics; target >= 0.9), and DG-APPO with ``vtrace_correction=False`` vs with.
   RLlib's own ``APPOTorchLearner`` is timed as a reference.
2. **Kondo compute**: learner time of Kondo (``keep_fraction=0.03``) vs DG. PPO skips for real
   (per minibatch a ``no_grad`` screening forward, then the differentiable forward and backward
   on the kept and critic samples only; target <= 0.5), at RLlib's default minibatch of 128 and
   at 1,000 (4 minibatches per epoch): what Kondo cannot skip is the screening forward (the
   actor encoder) and the per-minibatch work on parameter-sized tensors (Adam's step,
   RLlib's finiteness checks of every gradient), which small minibatches make weigh more.
   APPO's Kondo is *masked*: every sample goes through the
   backward pass (see :mod:`dg_envs.rllib.learners`), so no saving is expected there.

Setting: MNIST-shaped data (observation ``Box(0, 1, (784,))``, ``Discrete(10)`` actions),
RLlib's default MLP with ``fcnet_hiddens=[256, 256]`` (separate actor and critic encoders), and
the configs' defaults otherwise: PPO's train batch of 4,000 samples and Adam (10 epochs here by
default, RLlib's 30 with ``ppo_num_epochs=None``); APPO's train batch of 500 samples (10 rollout
fragments of 50) and one gradient step per update.
``IMPALALearner.update`` (APPO's) only queues a batch for RLlib's learner thread; the update that
thread runs, ``Learner.update``, is called here directly, as for PPO.

Repeats are interleaved (the order rotates each repeat) after one warm-up update per learner,
torch runs on one thread, and medians over repeats are reported, of wall-clock time and of this
process's CPU time (which other jobs on a shared machine disturb less). Needs the ``rllib``
extra. Run::

    .venv-rllib/bin/python -c "from dg_envs.bench.rllib_learners import bench_rllib_learners, \\
format_table; print(format_table(bench_rllib_learners()))"
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["KEEP_FRACTION", "bench_rllib_learners", "format_table"]

OBS_DIM, N_ACTIONS, HIDDENS = 784, 10, [256, 256]
KEEP_FRACTION = 0.03
_MODULE = "default_policy"


def _columns(kind: str, n: int, seed: int) -> dict[str, np.ndarray]:
    """One synthetic train batch: PPO's after its learner connector (GAE advantages, value
    targets) or APPO's (rewards, terminations, loss mask; V-trace runs inside the loss)."""
    from ray.rllib.core.columns import Columns
    from ray.rllib.evaluation.postprocessing import Postprocessing
    from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

    rng = np.random.default_rng(seed)
    logits = (0.1 * rng.standard_normal((n, N_ACTIONS))).astype(np.float32)
    actions = rng.integers(0, N_ACTIONS, n)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    columns = {
        Columns.OBS: rng.random((n, OBS_DIM), dtype=np.float32),
        Columns.ACTIONS: actions,
        Columns.ACTION_LOGP: logp[np.arange(n), actions],
        WEIGHTS_SEQ_NO: np.zeros(n, np.int64),  # stamped by RLlib's env runners: the lag metrics
    }
    if kind == "ppo":
        columns[Columns.ACTION_DIST_INPUTS] = logits
        columns[Postprocessing.ADVANTAGES] = rng.standard_normal(n).astype(np.float32)
        columns[Postprocessing.VALUE_TARGETS] = rng.standard_normal(n).astype(np.float32)
    else:
        columns[Columns.REWARDS] = (rng.random(n) < 0.5).astype(np.float32)
        columns[Columns.TERMINATEDS] = rng.random(n) < 0.02
        columns[Columns.LOSS_MASK] = np.ones(n, dtype=bool)
    return columns


def _rows(columns: dict[str, np.ndarray]) -> int:
    return len(next(iter(columns.values())))


def _multi_agent(columns: dict[str, np.ndarray]) -> Any:
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

    # Copies: no learner sees a batch another one shuffled or converted.
    copies = SampleBatch({key: column.copy() for key, column in columns.items()})
    return MultiAgentBatch({_MODULE: copies}, env_steps=_rows(columns))


def _update(learner: Any, batch: Any, num_epochs: int | None = None) -> dict:
    """RLlib's ``Learner.update`` with the config's epochs and minibatches, as PPO / APPO call it."""
    from ray.rllib.core.learner.learner import Learner

    config = learner.config
    return Learner.update(
        learner, batch=batch, timesteps={},
        num_epochs=num_epochs or config.num_epochs, minibatch_size=config.minibatch_size,
        shuffle_batch_per_epoch=config.shuffle_batch_per_epoch,
    )


def _time_interleaved(learners: dict[str, Any], batches: Sequence[dict], repeats: int) -> dict[str, dict]:
    """Per learner: wall and CPU seconds to update once on each batch (medians over repeats,
    the order rotating), updates/s, and the samples through backward per minibatch."""
    from dg_envs.rllib.learners import KONDO_BACKWARD_SAMPLES

    names = list(learners)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    backward: dict[str, float] = {}
    for name in names:  # warm-up: Adam's state, first-call allocations
        _update(learners[name], _multi_agent(batches[0]), num_epochs=1)
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[: rep % len(names)]:
            inputs = [_multi_agent(columns) for columns in batches]
            start, cpu_start = time.perf_counter(), time.process_time()
            for batch in inputs:
                results = _update(learners[name], batch)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - cpu_start)
            stat = results[_MODULE].get(KONDO_BACKWARD_SAMPLES)
            # (RLlib's own learner does not log it: all samples of each minibatch go through backward.)
            everything = learners[name].config.minibatch_size or _rows(batches[0])
            backward[name] = float(stat.peek()) if stat is not None else everything
    return {
        name: {"seconds": statistics.median(wall[name]), "cpu_seconds": statistics.median(cpu[name]),
               "updates_per_s": len(batches) / statistics.median(wall[name]),
               "backward_samples_per_minibatch": backward[name], "repeats": {"wall": wall[name], "cpu": cpu[name]}}
        for name in names
    }


def _ratio(results: dict, name: str, candidate: str, baseline: str, target: str, rate: bool) -> dict[str, Any]:
    """``rate``: candidate/baseline of updates per second (baseline/candidate time); else of time."""
    c, b = results[candidate], results[baseline]
    ratio = b["seconds"] / c["seconds"] if rate else c["seconds"] / b["seconds"]
    cpu = b["cpu_seconds"] / c["cpu_seconds"] if rate else c["cpu_seconds"] / b["cpu_seconds"]
    return {"name": name, "candidate": candidate, "baseline": baseline, "ratio": ratio, "cpu_ratio": cpu,
            "target": target}


def bench_rllib_learners(
    quick: bool = False,
    repeats: int = 5,
    ppo_minibatch_sizes: Sequence[int] = (128, 1000),
    ppo_num_epochs: int | None = 10,
    appo_updates: int = 40,
    torch_threads: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Time the learners and return ``{"settings", "learners", "ratios"}``.

    ``learners``: per learner label, median ``seconds`` (wall) and ``cpu_seconds`` per repeat
    (APPO: ``appo_updates`` updates on as many batches; PPO: one update on its train batch),
    ``updates_per_s`` and ``backward_samples_per_minibatch``. ``ratios``: one record per comparison, ``ratio`` (wall)
    and ``cpu_ratio``, of updates/s for the APPO overheads and of learner time for Kondo.
    ``ppo_num_epochs``: PPO's epochs per update (None: the config's 30). The ratios hardly depend
    on it (the work is per minibatch); 10 keeps a full run to a few minutes.
    ``quick``: tiny batches, one epoch, one repeat (a smoke test, not a measurement).
    """
    import gymnasium as gym
    import torch
    from ray.rllib.algorithms.algorithm_config import NotProvided
    from ray.rllib.algorithms.appo import APPOConfig

    from dg_envs.rllib import DGAPPOConfig, DGPPOConfig
    from dg_envs.rllib.learners import APPOLagTorchLearner

    if quick:
        repeats, ppo_minibatch_sizes, appo_updates = 1, (128,), 2
    ppo_batch, ppo_epochs = (256, 1) if quick else (DGPPOConfig().train_batch_size_per_learner, ppo_num_epochs)
    appo_batch = 100 if quick else DGAPPOConfig().train_batch_size_per_learner
    spaces = {_MODULE: (gym.spaces.Box(0.0, 1.0, (OBS_DIM,), np.float32), gym.spaces.Discrete(N_ACTIONS))}

    def build(config: Any) -> Any:
        torch.manual_seed(seed)  # every learner starts from the same weights
        config = config.rl_module(model_config={"fcnet_hiddens": HIDDENS}).learners(num_learners=0)
        return config.build_learner(spaces=spaces)

    appo = {
        "RLlib APPO": APPOConfig(),
        "APPO": DGAPPOConfig().training(learner_class=APPOLagTorchLearner),
        "DG-APPO": DGAPPOConfig(),
        "DG-APPO no V-trace": DGAPPOConfig().training(vtrace_correction=False),
        "Kondo-APPO 3%": DGAPPOConfig().training(keep_fraction=KEEP_FRACTION),
    }
    ppo = {}
    for mb in ppo_minibatch_sizes:
        common = {"minibatch_size": mb, "num_epochs": NotProvided if ppo_epochs is None else ppo_epochs}
        ppo[f"DG-PPO mb{mb}"] = DGPPOConfig().training(**common)
        ppo[f"Kondo-PPO 3% mb{mb}"] = DGPPOConfig().training(keep_fraction=KEEP_FRACTION, **common)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    learners: dict[str, Any] = {}
    try:
        learners = {name: build(config) for name, config in {**appo, **ppo}.items()}
        appo_batches = [_columns("appo", appo_batch, seed + i) for i in range(appo_updates)]
        results = _time_interleaved({name: learners[name] for name in appo}, appo_batches, repeats)
        ppo_batches = [_columns("ppo", ppo_batch, seed)]
        results |= _time_interleaved({name: learners[name] for name in ppo}, ppo_batches, repeats)
    finally:
        torch.set_num_threads(previous_threads)
        for learner in learners.values():
            learner.shutdown()  # APPO's: stops its learner thread

    ratios = [
        _ratio(results, "DG-APPO / APPO, updates/s", "DG-APPO", "APPO", ">= 0.9", rate=True),
        _ratio(results, "DG-APPO no V-trace / DG-APPO, updates/s", "DG-APPO no V-trace", "DG-APPO", "", rate=True),
        _ratio(results, "APPO (lag metrics) / RLlib APPO, updates/s", "APPO", "RLlib APPO", "", rate=True),
        *(_ratio(results, f"Kondo-PPO 3% / DG-PPO, learner time, minibatch {mb}", f"Kondo-PPO 3% mb{mb}",
                 f"DG-PPO mb{mb}", "<= 0.5", rate=False) for mb in ppo_minibatch_sizes),
        _ratio(results, "Kondo-APPO 3% / DG-APPO, learner time (masked)", "Kondo-APPO 3%", "DG-APPO",
               "~1 (no saving)", rate=False),
    ]
    settings = {
        "observation": f"Box(0, 1, ({OBS_DIM},))", "actions": f"Discrete({N_ACTIONS})", "fcnet_hiddens": HIDDENS,
        "keep_fraction": KEEP_FRACTION, "repeats": repeats, "torch_threads": torch_threads, "seed": seed,
        "ppo_train_batch": ppo_batch, "ppo_minibatch_sizes": list(ppo_minibatch_sizes),
        "ppo_num_epochs": learners[next(iter(ppo))].config.num_epochs,
        "appo_train_batch": appo_batch, "appo_updates_per_repeat": appo_updates,
        "appo_rollout_fragment_length": learners["DG-APPO"].config.get_rollout_fragment_length(),
    }
    return {"settings": settings, "learners": results, "ratios": ratios}


def format_table(results: dict[str, Any]) -> str:
    """The ratios, then each learner's medians, as plain-text tables."""
    s = results["settings"]
    lines = [
        (f"RLlib learners on {s['observation']} -> {s['fcnet_hiddens']} -> {s['actions']}, torch threads "
         f"{s['torch_threads']}, medians of {s['repeats']} interleaved repeats"),
        (f"PPO: train batch {s['ppo_train_batch']}, {s['ppo_num_epochs']} epochs, minibatches "
         f"{s['ppo_minibatch_sizes']}; APPO: train batch {s['appo_train_batch']} (fragments of "
         f"{s['appo_rollout_fragment_length']}), {s['appo_updates_per_repeat']} updates per repeat"),
        "",
        f"{'comparison':<56} {'ratio':>7} {'by CPU':>7}  target",
    ]
    lines += [f"{r['name']:<56} {r['ratio']:>7.3f} {r['cpu_ratio']:>7.3f}  {r['target']}" for r in results["ratios"]]
    lines += ["", f"{'learner':<22} {'s / repeat':>11} {'CPU s':>8} {'updates/s':>10} {'backward / minibatch':>21}"]
    lines += [f"{name:<22} {r['seconds']:>11.3f} {r['cpu_seconds']:>8.3f} {r['updates_per_s']:>10.2f} "
              f"{r['backward_samples_per_minibatch']:>21.2f}" for name, r in results["learners"].items()]
    return "\n".join(lines)
