"""Experiment ``mnist-paper``: MNIST from a stale actor at the distributed-DG paper's budget.

The claim (arXiv 2603.20521; PAPERS.md): with the actor D = 1,000 learner steps stale, after
10,000 steps of 100 images, REINFORCE is at ~90% test error, importance-weighted PG with the
actor's *exact* behaviour probabilities at ~8%, DG without any correction at ~2%.
``mnist-staleness`` runs our SB3-style algorithms at a CPU budget; this experiment runs the
papers' methods as the reference code runs them (one Adam step per batch, the batch-mean
baseline, no critic; :mod:`dg_envs.algos.reference`) and ours beside them, at the paper's
budget:

* ``dg_envs/MNISTBandit-v0`` (image in, digit out, reward 1{correct}, the label never shown),
  ``batch_size`` = 100 images per step (100 one-step sub-envs), one sampled digit per image;
* the paper's net 784-100-100-10 (ReLU), Adam 1e-3, 10,000 steps;
* the actor :class:`~dg_envs.wrappers.StaleActor`, a fixed lag D in {0, 10, 100, 1000}
  learner steps (every method here takes one gradient step per batch, so "updates" and
  "gradient steps" are the same count);
* reference methods (baseline: the mean reward of the batch, ``group_size`` = 100):
  ``PG`` plain REINFORCE (no ratio, no gate; :data:`~dg_envs.experiments.paper.METHODS`
  says how), ``IWPG`` = :class:`~dg_envs.algos.ReportedRatioPG`, whose ratio is against the
  probability the actor *reports*: a stale actor reports the exact log-prob of the stale
  policy that sampled, so this is exact importance weighting (``tests/experiments`` checks
  it), ``DG`` = :class:`~dg_envs.algos.DGPG`, ``CE`` = the supervised cross-entropy oracle
  (it trains on the labels, never on the actions: the lag cannot change it, so it runs at
  D = 0 only and stands for every D);
* ours (``sb3:`` labels; a learned state-value baseline): ``PG``, ``IWPG``, ``DGA2C`` with
  the same net, optimiser and batch.

Metric: the greedy policy's error on the test split. Data: ``source="auto"`` uses the full
MNIST if its IDX files are in the cache, else the 5,000 offline digits (4,000 train, 1,000
test); each record says which (``data_source``).

Timing (this 2-core machine, one torch thread per run, shared with other work; measured on
short runs and extrapolated): see :class:`Config`.

Example:
    >>> from dg_envs.experiments import mnist_paper as mp
    >>> [(j["method"], j["lag"]) for j in mp.grid(mp.Config(methods=("DG", "CE"), lags=(0, 10), seeds=(0,)))]
    [('DG', 0), ('CE', 0), ('DG', 10)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, run_sweep, write_page
from dg_envs.experiments.paper import (
    VERDICT_RULES, Claim, check_methods, claims_table, is_reference, judge, merge, method_catalogue, resolve_method,
)
from dg_envs.experiments.training import RunSpec, classification_error, train_run
from dg_envs.validation import check_int

NAME = "mnist-paper"

#: Config fields that change no run's result: they say which runs exist (what a run resolves to is in
#: its job's settings), left out of the run keys' hash.
GRID_FIELDS = ("methods", "method_settings", "lags", "lag_free_methods")

ACTIVATIONS = ("relu", "tanh")

#: The headline claims, judged at the sweep's largest lag (the paper's D = 1000).
CLAIMS = (
    Claim("DG <= 0.5 x IWPG", "DG ~2% vs IWPG (exact mu) ~8% (arXiv 2603.20521: D=1000, 10k steps)",
          a="DG", b="IWPG", factor=0.5),
    Claim("DG <= 0.1 x PG", "DG ~2% vs REINFORCE ~90% (same)", a="DG", b="PG", factor=0.1),
    Claim("sb3:DGA2C <= 0.5 x sb3:IWPG", "the same claim for our SB3-style methods (learned value baseline)",
          a="sb3:DGA2C", b="sb3:IWPG", factor=0.5),
    Claim("sb3:DGA2C <= 0.1 x sb3:PG", "the same claim for our SB3-style methods",
          a="sb3:DGA2C", b="sb3:PG", factor=0.1),
)


@dataclass
class Config:
    """Settings of the paper-budget MNIST staleness sweep.

    Timing on this 2-core machine, one torch thread per run, the other core busy (load 2-4):
    at 10,000 steps a reference method took 125-152 s at D=1000 (measured: PG 148 s, IWPG 152 s,
    DG 125 s, one seed each) and ~70 s at D=0 (7 ms per step, measured over 300 steps); the
    ``sb3:`` ones ~11-16 ms per step at D=0 and 18-20 ms at D=1000 (110-200 s per run). The full
    sweep (25 grid points x 3 seeds = 75 runs) is ~3.2 hours of one core; ``jobs=2`` halves it.
    """

    methods: tuple[str, ...] = ("PG", "IWPG", "DG", "CE", "sb3:PG", "sb3:IWPG", "sb3:DGA2C")
    """Method labels (keys of ``method_settings``): the reference methods, then ours (``sb3:``)."""
    method_settings: dict[str, dict] = field(
        default_factory=lambda: method_catalogue("PG", "IWPG", "DG", "CE", "sb3:PG", "sb3:IWPG", "sb3:DGA2C"))
    """Label -> ``{"algorithm": registry name, **keyword arguments}`` (:data:`~dg_envs.experiments.paper.METHODS`)."""
    lags: tuple[int, ...] = (0, 10, 100, 1000)
    """Actor lag D in learner steps (0: on-policy, no wrapper)."""
    lag_free_methods: tuple[str, ...] = ("CE",)
    """Methods whose runs do not depend on the actor (CE trains on labels): run at the first lag only."""
    total_updates: int = 10_000
    """Learner steps per run (the paper: 10,000), one per batch."""
    batch_size: int = 100
    """Images per step (one-step sub-envs); the reference methods' baseline is their mean reward."""
    hidden: tuple[int, ...] = (100, 100)
    """Hidden layers of the policy (the paper's 784-100-100-10); ours use the same for their critic."""
    activation: str = "relu"
    """Hidden activation, ``"relu"`` (the paper's) or ``"tanh"`` (SB3's default)."""
    learning_rate: float = 1e-3
    """Adam's step size (the paper's)."""
    eval_every: int = 500
    """Test error is recorded every this many steps (learning curves)."""
    source: str = "auto"
    """MNIST source: ``"auto"`` (IDX files if cached, else the offline digits), ``"idx"``, ``"offline"``."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    jobs: int = 1
    """Training runs side by side (processes, one torch thread each)."""

    @classmethod
    def quick(cls) -> Config:
        """About a minute on 2 CPU cores: two lags, 150 steps, every method."""
        return cls(lags=(0, 100), total_updates=150, eval_every=50)


def check_config(config: Config) -> None:
    """Every setting checked before any run (``ValueError`` naming it)."""
    check_methods(config.methods, config.method_settings)
    if not config.lags:
        raise ValueError("lags must hold at least one lag")
    for lag in config.lags:
        check_int(lag, "lags", low=0)
    check_int(config.total_updates, "total_updates", low=1)
    check_int(config.batch_size, "batch_size", low=1)
    check_int(config.eval_every, "eval_every", low=0)
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {config.activation!r}")
    from dg_envs.envs.mnist import SOURCES

    if config.source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {config.source!r}")


def grid(config: Config) -> list[dict[str, Any]]:
    """The runs: every (lag, method, seed), the lag-free methods at the first lag only."""
    return [{"method": m, "lag": lag, "seed": s, "settings": config.method_settings[m]}
            for i, lag in enumerate(config.lags) for m in config.methods
            if i == 0 or m not in config.lag_free_methods for s in config.seeds]


def run_spec(config: Config, method: str, lag: int, seed: int, tensorboard_log: str | None = None) -> RunSpec:
    """The training run of one (method, lag, seed)."""
    import torch

    algo, extra = resolve_method(method, config.method_settings)
    activation = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[config.activation]
    hidden = list(config.hidden)
    if is_reference(algo):  # no critic: the value head is never trained, keep it a single layer
        kwargs = {"group_size": config.batch_size, "policy_kwargs": {"net_arch": {"pi": hidden, "vf": []}}}
    else:
        kwargs = {"policy_kwargs": {"net_arch": hidden}}
    kwargs = merge(kwargs, {"learning_rate": config.learning_rate,
                            "policy_kwargs": {"activation_fn": activation, "optimizer_class": torch.optim.Adam}})
    return RunSpec(algo=algo, env_id="dg_envs/MNISTBandit-v0", env_kwargs={"split": "train", "source": config.source},
                   seed=seed, total_updates=config.total_updates, n_envs=config.batch_size, n_steps=1,
                   frictions={"stale": lag} if lag else {}, algo_kwargs=merge(kwargs, extra),
                   eval_every=config.eval_every, tensorboard_log=tensorboard_log)


def run_job(job: dict, config: Config, tensorboard_log: str | None = None) -> dict:
    """Train one grid point; its test error, learning curve, cost and data source."""
    from dg_envs.envs.mnist import load_mnist, resolve_source

    source = resolve_source(config.source)[0]
    evaluate = classification_error(*load_mnist("test", source=source))
    result = train_run(run_spec(config, job["method"], job["lag"], job["seed"], tensorboard_log), evaluate)
    return {"test_error": result["final"], "curve": result["curve"], "seconds": result["seconds"],
            "train_seconds": result["train_seconds"], "backward_samples": result["backward_samples"],
            "updates": config.total_updates, "batch_size": config.batch_size, "data_source": source,
            "train_images": len(load_mnist("train", source=source)[1])}


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """Every grid point, resumed from ``out_dir``'s records (``config.jobs`` at a time)."""
    check_config(config)
    work = partial(run_job, config=config, tensorboard_log=tensorboard_log)
    return run_sweep(NAME, config, grid(config), work, out_dir, GRID_FIELDS, progress=progress)


def errors(records: list[dict], method: str, lag: int) -> list[float]:
    """Per-seed test errors of ``method`` at ``lag`` (a lag-free method's at whatever lag it ran)."""
    exact = [r["test_error"] for r in records if r["method"] == method and r["lag"] == lag]
    if exact:
        return exact
    ran = {r["lag"] for r in records if r["method"] == method}
    return [r["test_error"] for r in records if r["method"] == method] if len(ran) == 1 else []


def budget(records: list[dict], lag: int) -> str:
    """The budget of the records, as the claims table says it."""
    r = records[0]
    seeds = len({x["seed"] for x in records})
    return (f"{r['updates']:,} steps x {r['batch_size']} images, D={lag}, {seeds} seeds, "
            f"{r['data_source']} MNIST ({r['train_images']:,} train images)")


def analyse(records: list[dict], out_dir: Path) -> str:
    """Test error per lag and method, the claims at the largest lag, and the figure."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    lags = sorted({r["lag"] for r in records})
    lag_free = [m for m in methods if len({r["lag"] for r in records if r["method"] == m}) == 1 and len(lags) > 1]
    header = ["lag D"] + [f"{m} (any D)" if m in lag_free else m for m in methods]
    table = markdown_table(header, [[lag] + [format_mean_spread(errors(records, m, lag)) for m in methods]
                                    for lag in lags])
    stalest = lags[-1]
    values = {m: errors(records, m, stalest) for m in methods}
    rows = [(claim, judge(claim, values), budget(records, stalest)) for claim in CLAIMS]
    note = "" if stalest == 1000 else f" (the sweep's largest lag is D={stalest}; the paper's is 1000)"
    text = (f"Greedy test error (mean ± std over seeds). Reference methods: one Adam step per batch of "
            f"{records[0]['batch_size']} images, the batch-mean baseline, no critic; `sb3:` methods: ours, with a "
            f"learned value baseline.\n\n{table}\n\n## The papers' claims at D={stalest}{note}\n\n"
            f"{claims_table(rows)}\n\n{VERDICT_RULES}")

    fig, (ax_lag, ax_curve) = new_figure(ncols=2)
    for m in methods:
        means = [np.mean(errors(records, m, lag)) for lag in lags]
        stds = [np.std(errors(records, m, lag)) for lag in lags]
        ax_lag.errorbar([max(lag, 1) for lag in lags], means, yerr=stds, marker="o", capsize=3, label=m,
                        linestyle="--" if m.startswith("sb3:") else "-")
        curves = [r["curve"] for r in records if r["method"] == m and (r["lag"] == stalest or m in lag_free)]
        steps = [u for u, _ in curves[0]]
        ax_curve.plot(steps, np.mean([[e for _, e in c] for c in curves], axis=0), marker=".", label=m,
                      linestyle="--" if m.startswith("sb3:") else "-")
    ax_lag.set_xscale("log")
    ax_lag.set_yscale("log")
    ax_lag.set_xlabel("actor lag D (learner steps; 0 plotted at 1)")
    ax_lag.set_ylabel("test error")
    ax_lag.set_title("final test error vs staleness", fontsize=9)
    ax_lag.legend(fontsize=7)
    ax_curve.set_yscale("log")
    ax_curve.set_xlabel("learner steps")
    ax_curve.set_ylabel("test error")
    ax_curve.set_title(f"learning curves at D={stalest}", fontsize=9)
    ax_curve.legend(fontsize=7)
    return write_page(out_dir, NAME, text, fig)
