"""Experiment ``token-reversal-frictions``: DG vs PG/PPO when the actors are imperfect.

The distributed-DG paper's token-reversal result (arXiv 2603.20521), at a CPU-sized budget:
reverse a random prompt of ``length`` tokens over ``vocab_size`` symbols, one token per step,
reward = fraction of tokens correct at the end. Each friction alone, then all four at once:

* ``stale``: the actor samples with the policy ``lag`` learner updates old;
* ``bug``: with probability p a whole answer is the all-zeros landmine, reported as certain;
* ``reward``: with probability p the episode's reward is a fair coin between 0 and 1;
* ``discovery``: with probability p the whole answer is the correct one.

Metric: greedy sequence error (fraction of imperfect answers) on fresh clean prompts.
A second sweep grows the task (H, M) with all four frictions on, to see how the gap scales.

Example:
    >>> from dg_envs.experiments import token_reversal_frictions as trf
    >>> sorted(trf.friction_settings(trf.Config()))
    ['all', 'bug', 'clean', 'discovery', 'reward', 'stale']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from stable_baselines3 import PPO

from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, run_sweep, write_page
from dg_envs.experiments.training import RunSpec, sequence_error, train_run

NAME = "token-reversal-frictions"

#: Config fields that change no run's result: they only say which runs exist (left out of the run keys' hash).
GRID_FIELDS = ("methods", "sizes", "size_methods")


@dataclass
class Config:
    """Settings of the token-reversal friction sweep."""

    methods: tuple[str, ...] = ("PG", "PPO", "DGPPO", "KondoPPO")
    """Names of :data:`dg_envs.algos.ALGORITHMS`. PG: REINFORCE with a value baseline; PPO: SB3's,
    trained on the executed action (:class:`dg_envs.algos.RelabelledPPO`); DGPPO / KondoPPO: ours."""
    method_kwargs: dict[str, dict] = field(default_factory=lambda: {"KondoPPO": {"keep_fraction": 0.3}})
    """Extra keyword arguments of a method's algorithm, by method name (KondoPPO keeps 30%)."""
    length: int = 10
    """Prompt length H of the friction sweep (the paper's 10)."""
    vocab_size: int = 2
    """Vocabulary size M of the friction sweep (the paper: 2)."""
    lag: int = 8
    """Stale actor's lag, in learner updates."""
    bug_p: float = 0.1
    """Probability that a whole answer is the landmine."""
    reward_p: float = 0.1
    """Probability that an episode's reward is replaced by a fair coin."""
    discovery_p: float = 0.02
    """Probability that a whole answer is the correct one."""
    total_updates: int = 60
    """Learner updates per run."""
    n_envs: int = 8
    n_steps: int = 128
    """Steps per env per update: one update sees n_envs * n_steps / length answers."""
    sizes: tuple[tuple[int, int], ...] = ((6, 2), (8, 2))
    """(H, M) of the task-size sweep, all four frictions on."""
    size_methods: tuple[str, ...] = ("PPO", "DGPPO")
    """Methods compared in the task-size sweep."""
    eval_episodes: int = 256
    """Clean greedy episodes per evaluation."""
    vectorized: bool = True
    """Run the env and the frictions natively batched (``dg_envs.vec_env.make_vec_env``); False:
    SB3's ``DummyVecEnv`` of per-env wrappers (the same semantics, other random streams)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    jobs: int = 1
    """Training runs side by side (processes, one torch thread each)."""

    @classmethod
    def quick(cls) -> "Config":
        """Minutes on 2 CPU cores: short runs, PPO vs DGPPO, no size sweep."""
        return cls(methods=("PPO", "DGPPO"), length=5, total_updates=6, n_steps=64, sizes=(), eval_episodes=64)


def friction_settings(config: Config) -> dict[str, dict]:
    """Friction name -> keyword arguments of :func:`dg_envs.wrappers.apply_frictions`."""
    one = {
        "stale": {"stale": config.lag},
        "bug": {"bug": {"p": config.bug_p, "per": "episode"}},
        # spare_discoveries=True: this page's committed runs spared discoveries (the default
        # then); the reference's coin hits them too (today's default; the paper experiments).
        "reward": {"reward_corruption": {"p": config.reward_p, "per": "episode", "terminal_only": True,
                                         "spare_discoveries": True}},
        "discovery": {"discovery": {"p": config.discovery_p, "per": "episode"}},
    }
    settings = {"clean": {}, **one, "all": {k: v for kw in one.values() for k, v in kw.items()}}
    return settings


def algorithm(config: Config, method: str) -> tuple[type, dict]:
    """The class of a method name (from :func:`dg_envs.algos.get_algorithm`) and its extra keyword arguments.

    >>> algo, extra = algorithm(Config(), "KondoPPO")
    >>> algo.__name__, extra
    ('KondoPPO', {'keep_fraction': 0.3})
    """
    from dg_envs.algos import get_algorithm

    return get_algorithm(method), dict(config.method_kwargs.get(method, {}))


def run_spec(config: Config, method: str, frictions: dict, length: int, vocab_size: int, seed: int,
             tensorboard_log: str | None = None) -> RunSpec:
    """One training run."""
    algo, extra = algorithm(config, method)
    if issubclass(algo, PPO):  # minibatches and epochs: PPO's family only
        extra = {"batch_size": 256, "n_epochs": 4, **extra}
    return RunSpec(algo=algo, env_id="dg_envs/TokenReversal-v0", seed=seed,
                   env_kwargs={"length": length, "vocab_size": vocab_size},
                   total_updates=config.total_updates, n_envs=config.n_envs, n_steps=config.n_steps,
                   frictions=frictions, algo_kwargs={"learning_rate": 1e-3, "ent_coef": 0.0, **extra},
                   tensorboard_log=tensorboard_log, vectorized=config.vectorized)


def run_job(job: dict, config: Config, tensorboard_log: str | None = None) -> dict:
    """Train one grid point of :func:`run`; its greedy sequence error."""
    length, vocab = job["length"], job["vocab_size"]
    evaluate = sequence_error({"length": length, "vocab_size": vocab}, episodes=config.eval_episodes)
    spec = run_spec(config, job["method"], friction_settings(config)[job["friction"]], length, vocab, job["seed"],
                    tensorboard_log)
    result = train_run(spec, evaluate)
    return {"sequence_error": result["final"], "seconds": result["seconds"]}


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """Both sweeps; one record per run, resumed from ``out_dir``'s records."""
    for method in {*config.methods, *config.size_methods}:  # an unknown name fails before any run
        algorithm(config, method)
    keys = ("sweep", "friction", "length", "vocab_size", "method", "seed")
    grid = [("frictions", name, config.length, config.vocab_size, m, s)
            for name in friction_settings(config) for m in config.methods for s in config.seeds]
    grid += [("size", "all", h, v, m, s) for h, v in config.sizes for m in config.size_methods for s in config.seeds]
    work = partial(run_job, config=config, tensorboard_log=tensorboard_log)
    return run_sweep(NAME, config, [dict(zip(keys, point)) for point in grid], work, out_dir, GRID_FIELDS,
                     progress=progress)


def analyse(records: list[dict], out_dir: Path) -> str:
    """Tables (friction x method; size x method) and a two-panel figure."""
    fr = [r for r in records if r["sweep"] == "frictions"]
    methods = list(dict.fromkeys(r["method"] for r in fr))
    names = list(dict.fromkeys(r["friction"] for r in fr))
    err = lambda rs, **w: [r["sequence_error"] for r in rs if all(r[k] == v for k, v in w.items())]  # noqa: E731
    table = markdown_table(["friction"] + methods,
                           [[n] + [format_mean_spread(err(fr, friction=n, method=m)) for m in methods] for n in names])
    size = [r for r in records if r["sweep"] == "size"]
    if size:
        smethods = list(dict.fromkeys(r["method"] for r in size))
        sizes = list(dict.fromkeys((r["length"], r["vocab_size"]) for r in size))
        table += "\n\nTask size, all four frictions on:\n\n" + markdown_table(
            ["H, M"] + smethods,
            [[f"{h}, {v}"] + [format_mean_spread(err(size, length=h, vocab_size=v, method=m)) for m in smethods]
             for h, v in sizes])

    fig, axes = new_figure(ncols=2)
    width = 0.8 / max(len(methods), 1)
    for i, m in enumerate(methods):
        means = [np.mean(err(fr, friction=n, method=m)) for n in names]
        stds = [np.std(err(fr, friction=n, method=m)) for n in names]
        axes[0].bar(np.arange(len(names)) + i * width, means, width, yerr=stds, capsize=2, label=m)
    axes[0].set_xticks(np.arange(len(names)) + width * (len(methods) - 1) / 2, names, fontsize=8)
    axes[0].set_ylabel("sequence error")
    axes[0].set_title("token reversal: each friction, and all four", fontsize=9)
    axes[0].legend(fontsize=8)
    if size:
        for m in smethods:
            axes[1].plot([f"{h},{v}" for h, v in sizes], [np.mean(err(size, length=h, vocab_size=v, method=m))
                                                          for h, v in sizes], marker="o", label=m)
        axes[1].set_xlabel("task size H, M")
        axes[1].set_ylabel("sequence error")
        axes[1].set_title("all four frictions, growing task", fontsize=9)
        axes[1].legend(fontsize=8)
    return write_page(out_dir, NAME, table, fig)
