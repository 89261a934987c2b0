"""Experiment ``kondo-frontier``: what quality does the Kondo gate keep per unit of compute?

The Kondo-gate paper (arXiv 2603.20526): screen every sample's delight in a cheap forward pass,
pay for a backward pass only on the samples worth it. We sweep ``keep_fraction`` in
{1, 0.3, 0.1, 0.03} (1 is plain DG) and the adaptive price 0 (keep positive delight), and
record the final error against two costs: samples that got a backward pass (the paper's
count) and measured seconds inside ``train()`` on this CPU. Beside our 3% runs the 3% with the
reference's weighting (``weighting="reference"``, see :class:`dg_envs.algos.weighting.KondoMixin`).

* MNIST (``KondoA2C``, one update per batch of images): greedy test error.
* Token reversal (``KondoPPO``): greedy sequence error.

Example:
    >>> from dg_envs.experiments import kondo_frontier as kf
    >>> kf.gate_label({"keep_fraction": 0.03})
    'keep 3%'
    >>> kf.gate_label({"keep_fraction": 0.03, "weighting": "reference"})
    'keep 3% (reference weights)'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, run_sweep, write_page
from dg_envs.experiments.training import RunSpec, classification_error, sequence_error, train_run

NAME = "kondo-frontier"

#: Config fields that change no run's result: they only say which runs exist (left out of the run keys' hash).
GRID_FIELDS = ("gates", "tasks")


@dataclass
class Config:
    """Settings of the Kondo compute frontier."""

    gates: tuple[dict, ...] = ({"keep_fraction": 1.0}, {"keep_fraction": 0.3}, {"keep_fraction": 0.1},
                               {"keep_fraction": 0.03}, {"price": 0.0},
                               {"keep_fraction": 0.03, "weighting": "reference"})
    """Kondo settings: a kept fraction (price = the batch's delight quantile) or a fixed price, and
    optionally ``weighting="reference"`` (the reference's survivors, weight 1, summed over all screened)."""
    tasks: tuple[str, ...] = ("mnist", "token-reversal")
    """Which tasks to run."""
    mnist_updates: int = 2000
    """Learner updates on MNIST (batches of ``mnist_batch`` images)."""
    mnist_batch: int = 100
    """Images per MNIST update."""
    token_updates: int = 60
    """Learner updates on token reversal."""
    token_length: int = 5
    """Prompt length H of token reversal."""
    vectorized: bool = True
    """Run the env and the frictions natively batched (``dg_envs.vec_env.make_vec_env``); False:
    SB3's ``DummyVecEnv`` of per-env wrappers (the same semantics, other random streams)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    jobs: int = 1
    """Training runs side by side (processes, one torch thread each)."""

    @classmethod
    def quick(cls) -> "Config":
        """Minutes on 2 CPU cores."""
        return cls(gates=({"keep_fraction": 1.0}, {"keep_fraction": 0.03},
                          {"keep_fraction": 0.03, "weighting": "reference"}),
                   mnist_updates=200, token_updates=5, tasks=("mnist",))


def gate_label(gate: dict) -> str:
    """A short name of a Kondo setting."""
    if "keep_fraction" in gate:
        label = "DG (keep all)" if gate["keep_fraction"] == 1 else f"keep {gate['keep_fraction']:.0%}"
    else:
        label = f"price {gate['price']:g}"
    return label + (" (reference weights)" if gate.get("weighting", "gate") == "reference" else "")


def run_spec(config: Config, task: str, gate: dict, seed: int, tensorboard_log: str | None = None) -> RunSpec:
    """One training run."""
    from dg_envs.algos import get_algorithm

    if task == "mnist":
        return RunSpec(algo=get_algorithm("KondoA2C"), env_id="dg_envs/MNISTBandit-v0", env_kwargs={"split": "train"},
                       seed=seed, total_updates=config.mnist_updates, n_envs=config.mnist_batch, n_steps=1,
                       algo_kwargs={"learning_rate": 1e-3, "ent_coef": 0.0, **gate,
                                    "policy_kwargs": {"net_arch": [100, 100], "optimizer_class": torch.optim.Adam}},
                       tensorboard_log=tensorboard_log, vectorized=config.vectorized)
    if task == "token-reversal":
        return RunSpec(algo=get_algorithm("KondoPPO"), env_id="dg_envs/TokenReversal-v0",
                       env_kwargs={"length": config.token_length}, seed=seed, total_updates=config.token_updates,
                       n_envs=8, n_steps=128,
                       algo_kwargs={"learning_rate": 1e-3, "ent_coef": 0.0, "batch_size": 256, "n_epochs": 4, **gate},
                       tensorboard_log=tensorboard_log, vectorized=config.vectorized)
    raise ValueError(f"task must be 'mnist' or 'token-reversal', got {task!r}")


def run_job(job: dict, config: Config, tensorboard_log: str | None = None) -> dict:
    """Train one (task, gate, seed); its error and what its updates cost."""
    if job["task"] == "mnist":
        from dg_envs.envs.mnist import load_mnist

        evaluate = classification_error(*load_mnist("test"))
    else:
        evaluate = sequence_error({"length": config.token_length})
    result = train_run(run_spec(config, job["task"], job["settings"], job["seed"], tensorboard_log), evaluate)
    return {"error": result["final"], "backward_samples": result["backward_samples"],
            "train_seconds": result["train_seconds"], "seconds": result["seconds"]}


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """Every (task, gate, seed): final error, backward samples, seconds in train(), resumed from ``out_dir``'s records."""
    for task in config.tasks:  # a bad task fails before any run
        if task not in ("mnist", "token-reversal"):
            raise ValueError(f"tasks must hold 'mnist' or 'token-reversal', got {task!r}")
    grid = [{"task": t, "gate": gate_label(g), "seed": s, "settings": g}
            for t in config.tasks for g in config.gates for s in config.seeds]
    work = partial(run_job, config=config, tensorboard_log=tensorboard_log)
    return run_sweep(NAME, config, grid, work, out_dir, GRID_FIELDS, progress=progress)


def analyse(records: list[dict], out_dir: Path) -> str:
    """Table per task (error, backward passes, train() seconds) and error-vs-cost figures."""
    tasks = list(dict.fromkeys(r["task"] for r in records))
    sections = []
    fig, axes = new_figure(ncols=2 * len(tasks), width=4.2)
    for i, task in enumerate(tasks):
        recs = [r for r in records if r["task"] == task]
        gates = list(dict.fromkeys(r["gate"] for r in recs))
        col = lambda g, k: [r[k] for r in recs if r["gate"] == g]  # noqa: E731
        reference = np.mean(col(gates[0], "backward_samples"))
        rows = [[g, format_mean_spread(col(g, "error")), f"{np.mean(col(g, 'backward_samples')):.3g}",
                 f"{np.mean(col(g, 'backward_samples')) / reference:.3f}",
                 format_mean_spread(col(g, "train_seconds")), format_mean_spread(col(g, "seconds"))] for g in gates]
        sections.append(f"## {task}\n\n" + markdown_table(
            ["gate", "error", "backward samples", f"vs {gates[0]}", "seconds in train()", "seconds in learn()"], rows))
        for ax, cost, label in ((axes[2 * i], "backward_samples", "samples with a backward pass"),
                                (axes[2 * i + 1], "train_seconds", "seconds inside train()")):
            for g in gates:
                ax.errorbar(np.mean(col(g, cost)), np.mean(col(g, "error")), xerr=np.std(col(g, cost)),
                            yerr=np.std(col(g, "error")), marker="o", capsize=3, label=g)
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("error")
            ax.set_title(task, fontsize=9)
            ax.legend(fontsize=7)
    table = "\n\n".join(sections + [reference_weights_note(records)])
    return write_page(out_dir, NAME, table, fig)


def reference_weights_note(records: list[dict], ours: str = "keep 3%",
                           reference: str = "keep 3% (reference weights)") -> str:
    """One sentence: what the reference weighting is and its measured error against ours, per task ("" without it).

    >>> pairs = (("keep 3%", 0.07), ("keep 3% (reference weights)", 0.1))
    >>> recs = [{"task": "mnist", "gate": g, "error": e} for g, e in pairs]
    >>> reference_weights_note(recs).endswith("against *keep 3%*: mnist: 0.1 ± 0 (n=1) against 0.07 ± 0 (n=1).")
    True
    >>> reference_weights_note(recs[:1])
    ''
    """
    tasks = [t for t in dict.fromkeys(r["task"] for r in records)
             if {ours, reference} <= {r["gate"] for r in records if r["task"] == t}]
    if not tasks:
        return ""

    def error(task: str, gate: str) -> str:
        return format_mean_spread(r["error"] for r in records if r["task"] == task and r["gate"] == gate)

    measured = "; ".join(f"{t}: {error(t, reference)} against {error(t, ours)}" for t in tasks)
    return (f"*{reference}*: Kondo weighted as the reference code does (`egg/losses/kondo.py`): the survivors "
            f"(every sample tied with the k-th delight kept too) weigh 1 instead of the DG gate sigmoid(chi / eta), "
            f"and the policy gradient is summed over them and divided by all screened samples of the minibatch "
            f"instead of averaged over the processed ones; final error with it against *{ours}*: {measured}.")
