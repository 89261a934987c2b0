"""Experiment ``mnist-staleness``: learning MNIST as a bandit from a stale actor.

The distributed-DG paper's first result (arXiv 2603.20521): with the actor D learner updates
behind, REINFORCE collapses, importance weighting with *exact* behaviour probabilities
recovers part of it, and DG without any correction learns almost as if on-policy.

Setting, as in the paper at a CPU-sized budget: ``dg_envs/MNISTBandit-v0`` (observation an
image, action a digit, reward 1{correct}); MLP 784-100-100-10 with a value head, Adam 1e-3,
batches of 100 images (100 envs x 1 step), one sampled action per image. The actor is
:class:`~dg_envs.wrappers.StaleActor` with a fixed lag D (D=0: no wrapper, on-policy).
Metric: greedy test error on the held-out split.

Example:
    >>> from dg_envs.experiments import mnist_staleness as ms
    >>> ms.Config.quick().lags
    (0, 100)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, run_sweep, write_page
from dg_envs.experiments.training import RunSpec, classification_error, train_run

NAME = "mnist-staleness"

#: Config fields that change no run's result: they only say which runs exist (left out of the run keys' hash).
GRID_FIELDS = ("methods", "lags")


@dataclass
class Config:
    """Settings of the staleness sweep."""

    methods: tuple[str, ...] = ("PG", "IWPG", "DG")
    """PG: REINFORCE with a value baseline; IWPG: PG x pi/mu with the actor's exact mu; DG: DGA2C
    (labels as :data:`ALGORITHM_NAMES` maps them; other names of :data:`dg_envs.algos.ALGORITHMS` work too)."""
    lags: tuple[int, ...] = (0, 10, 100, 1000)
    """Actor lag D in learner updates (0: on-policy, no wrapper)."""
    total_updates: int = 3000
    """Learner updates per run (the paper: 10,000)."""
    batch_size: int = 100
    """Images per update (parallel one-step environments)."""
    hidden: tuple[int, ...] = (100, 100)
    """MLP hidden layers (policy and value nets each)."""
    learning_rate: float = 1e-3
    """Adam step size."""
    eval_every: int = 250
    """Test error is recorded every this many updates (learning curves)."""
    source: str = "auto"
    """MNIST source: full IDX files if cached, else the 5,000 offline digits (see MNISTBanditEnv)."""
    vectorized: bool = True
    """Run the env and the frictions natively batched (``dg_envs.vec_env.make_vec_env``); False:
    SB3's ``DummyVecEnv`` of per-env wrappers (the same semantics, other random streams)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    jobs: int = 1
    """Training runs side by side (processes, one torch thread each)."""

    @classmethod
    def quick(cls) -> "Config":
        """Minutes on 2 CPU cores: two lags, a short run."""
        return cls(lags=(0, 100), total_updates=300, eval_every=100)


#: Record label -> :data:`dg_envs.algos.ALGORITHMS` name, where they differ. The records and
#: tables say "DG" for DGA2C (the paper's name; the committed results in docs/results use it).
ALGORITHM_NAMES = {"DG": "DGA2C"}


def algorithm(method: str) -> type:
    """The algorithm class of a method label (``"PG"``, ``"IWPG"``, ``"DG"``, or any registry name).

    >>> algorithm("DG").__name__
    'DGA2C'
    """
    from dg_envs.algos import get_algorithm

    try:
        return get_algorithm(ALGORITHM_NAMES.get(method, method))
    except ValueError as error:
        raise ValueError(f"method must be one of {sorted(ALGORITHM_NAMES)} or a registry name; {error}") from None


def run_spec(config: Config, method: str, lag: int, seed: int, tensorboard_log: str | None = None) -> RunSpec:
    """The training run of one (method, lag, seed)."""
    return RunSpec(
        algo=algorithm(method),
        env_id="dg_envs/MNISTBandit-v0",
        env_kwargs={"split": "train", "source": config.source},
        seed=seed,
        total_updates=config.total_updates,
        n_envs=config.batch_size,
        n_steps=1,
        frictions={"stale": lag} if lag else {},
        algo_kwargs={
            "learning_rate": config.learning_rate,
            "ent_coef": 0.0,
            "policy_kwargs": {"net_arch": list(config.hidden), "optimizer_class": torch.optim.Adam},
        },
        eval_every=config.eval_every,
        tensorboard_log=tensorboard_log,
        vectorized=config.vectorized,
    )


def run_job(job: dict, config: Config, tensorboard_log: str | None = None) -> dict:
    """Train one (method, lag, seed); its test error and learning curve."""
    from dg_envs.envs.mnist import load_mnist

    evaluate = classification_error(*load_mnist("test", source=config.source))
    result = train_run(run_spec(config, job["method"], job["lag"], job["seed"], tensorboard_log), evaluate)
    return {"test_error": result["final"], "curve": result["curve"], "seconds": result["seconds"]}


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """Every (method, lag, seed): final test error and its learning curve, resumed from ``out_dir``'s records."""
    for method in config.methods:  # an unknown method fails now, not after the runs before it
        algorithm(method)
    grid = [{"method": m, "lag": lag, "seed": s} for lag in config.lags for m in config.methods for s in config.seeds]
    work = partial(run_job, config=config, tensorboard_log=tensorboard_log)
    return run_sweep(NAME, config, grid, work, out_dir, GRID_FIELDS, progress=progress)


def analyse(records: list[dict], out_dir: Path) -> str:
    """Table of test error (mean ± std over seeds) per lag and method, and the figure."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    lags = sorted({r["lag"] for r in records})
    cell = lambda m, lag: [r["test_error"] for r in records if r["method"] == m and r["lag"] == lag]  # noqa: E731
    table = markdown_table(["lag D"] + [f"{m} test error" for m in methods],
                           [[lag] + [format_mean_spread(cell(m, lag)) for m in methods] for lag in lags])

    fig, (ax_lag, ax_curve) = new_figure(ncols=2)
    for m in methods:
        means = [np.mean(cell(m, lag)) for lag in lags]
        stds = [np.std(cell(m, lag)) for lag in lags]
        ax_lag.errorbar([max(lag, 1) for lag in lags], means, yerr=stds, marker="o", capsize=3, label=m)
        stalest = [r["curve"] for r in records if r["method"] == m and r["lag"] == lags[-1]]
        steps = [u for u, _ in stalest[0]]
        ax_curve.plot(steps, np.mean([[e for _, e in c] for c in stalest], axis=0), marker=".", label=m)
    ax_lag.set_xscale("log")
    ax_lag.set_xlabel("actor lag D (learner updates; 0 plotted at 1)")
    ax_lag.set_ylabel("test error")
    ax_lag.set_title("final test error vs staleness", fontsize=9)
    ax_lag.legend(fontsize=8)
    ax_curve.set_xlabel("learner updates")
    ax_curve.set_ylabel("test error")
    ax_curve.set_title(f"learning curves at D={lags[-1]}", fontsize=9)
    ax_curve.legend(fontsize=8)
    return write_page(out_dir, NAME, table, fig)
