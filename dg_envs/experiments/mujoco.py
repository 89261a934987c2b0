"""Experiment ``mujoco``: DGPPO against SB3's PPO (and PG) on MuJoCo control, clean and with frictions.

The DG paper's continuous-control claim (DG beats PPO and REINFORCE) on Gymnasium's MuJoCo
tasks, at a 2-CPU budget, with the distributed paper's frictions. Three sweeps:

* **main**: every task x friction x method. Frictions: ``clean``; ``stale+reward`` (the actor
  acts with the policy ``lag`` updates old, and each step's reward is, with probability p, a
  fair coin between 0 and 1); ``bug`` (with probability p a step's action is the landmine
  "full torque on every joint", the action space's upper bound, reported as certain).
* **ablation**: DGPPO's continuous surprisal (``raw``, ``entropy_centered``, ``per_dim``,
  ``clipped``) on clean tasks (or under ``ablation_frictions``), with the policy started narrow (``log_std_init=-2``, the
  Zoo's tuned MuJoCo setting) where a Gaussian density exceeds 1 and raw ``-log pi`` is
  negative from the first update.
* **discovery**: an expert PPO trained here and saved (``mujoco-expert-<task>.zip``) is the
  oracle of :class:`~dg_envs.wrappers.RareDiscovery` (via
  :class:`~dg_envs.wrappers.PolicyOracle`): with probability p a step's action is the
  expert's.

Hyperparameters and budgets come from the Zoo YAML files in :mod:`dg_envs.zoo`
(``dgppo.yml`` for PPO and DGPPO alike, ``pg.yml`` for PG). DGPPO runs with
``box_gate="sample"``, its default when the records were made (the default is now
``"scale_leave_one_out"``, chosen by the ``widening`` experiment). Metric: the greedy policy's mean
return over clean evaluation episodes (higher is better), along training and at the end.

Example:
    >>> from dg_envs.experiments import mujoco
    >>> config = mujoco.Config()
    >>> sorted(mujoco.friction_settings(config, high=[1.0]))
    ['bug', 'clean', 'stale+reward']
    >>> mujoco.hyperparams("DGPPO", "Hopper-v5")["n_timesteps"]
    100000
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, run_sweep, write_page
from dg_envs.experiments.training import RunSpec, train_run

NAME = "mujoco"

#: Config fields that change no run's result: they only say which runs exist (left out of the run keys' hash).
GRID_FIELDS = ("tasks", "methods", "frictions", "ablation_tasks", "surprisals", "ablation_frictions",
               "discovery_tasks", "discovery_methods")


@dataclass
class Config:
    """Settings of the MuJoCo sweeps."""

    tasks: tuple[str, ...] = ("InvertedPendulum-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")
    methods: tuple[str, ...] = ("PG", "PPO", "DGPPO")
    """Names of :data:`dg_envs.algos.ALGORITHMS`. PG: REINFORCE with a value baseline; PPO: SB3's,
    trained on the executed action (:class:`dg_envs.algos.RelabelledPPO`); DGPPO: ours."""
    frictions: tuple[str, ...] = ("clean", "stale+reward", "bug")
    timesteps: int | None = None
    """Timesteps per run; None: each task's ``n_timesteps`` in the Zoo YAML (30k-100k)."""
    lag: int = 4
    """Stale actor's lag in learner updates (of 1024 steps each)."""
    reward_p: float = 0.1
    """Probability that a step's reward is replaced by a fair coin between 0 and 1."""
    bug_p: float = 0.1
    """Probability that a step's action is the full-torque landmine."""
    ablation_tasks: tuple[str, ...] = ("InvertedPendulum-v5", "Hopper-v5")
    surprisals: tuple[str, ...] = ("raw", "entropy_centered", "per_dim", "clipped")
    ablation_frictions: tuple[str, ...] = ("clean",)
    """Frictions (names of :func:`friction_settings`) the ablation runs under."""
    ablation_log_std_init: float = -2.0
    """Initial log std of the ablation's policies (SB3's default is 0)."""
    discovery_tasks: tuple[str, ...] = ("Hopper-v5",)
    discovery_methods: tuple[str, ...] = ("PPO", "DGPPO")
    discovery_p: float = 0.05
    """Probability that a step's action is the expert's."""
    expert_timesteps: int = 300_000
    """Training budget of the expert PPO (the discovery oracle)."""
    eval_points: int = 5
    """Evaluations along each run (learning curves), the last one at the end."""
    eval_episodes: int = 5
    """Clean greedy episodes per evaluation."""
    seeds: tuple[int, ...] = (0, 1, 2)
    jobs: int = 1
    """Runs in parallel (processes, one torch thread each)."""

    @classmethod
    def quick(cls) -> Config:
        """A minute or two on 2 CPU cores: InvertedPendulum, short runs, every sweep."""
        return cls(tasks=("InvertedPendulum-v5",), methods=("PPO", "DGPPO"), frictions=("clean", "bug"), timesteps=2048,
                   ablation_tasks=("InvertedPendulum-v5",), surprisals=("raw", "entropy_centered"),
                   discovery_tasks=("InvertedPendulum-v5",), expert_timesteps=2048, eval_points=2, eval_episodes=2)


def hyperparams(method: str, env_id: str) -> dict[str, Any]:
    """The Zoo YAML entry that ``method`` trains with on ``env_id`` (PPO shares DGPPO's)."""
    from dg_envs.zoo import load_hyperparams

    params = load_hyperparams("pg" if method == "PG" else "dgppo", env_id)
    params["n_timesteps"] = int(params["n_timesteps"])
    return params


def friction_settings(config: Config, high: Any) -> dict[str, dict]:
    """Friction name -> keyword arguments of :func:`~dg_envs.wrappers.apply_frictions`.

    ``high``: the task's action upper bound, the bug's landmine.
    """
    return {
        "clean": {},
        "stale+reward": {"stale": config.lag, "reward_corruption": {"p": config.reward_p, "mode": "coin"}},
        "bug": {"bug": {"p": config.bug_p, "landmine": np.asarray(high, dtype=np.float32)}},
    }


def mean_return(model, env_id: str, episodes: int, seed: int = 10_000) -> float:
    """Mean return of ``model``'s greedy policy over ``episodes`` clean episodes of ``env_id``.

    Not SB3's ``evaluate_policy``: episode ``i`` starts from ``reset(seed=seed + i)``, so every
    run of every method is scored on the same start states.
    """
    env = gym.make(env_id)
    total = 0.0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True)[0])
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / episodes


def expert_path(out_dir: Path | str, env_id: str) -> Path:
    """Where the experiment saves the expert PPO of ``env_id``."""
    return Path(out_dir) / f"{NAME}-expert-{env_id}.zip"


def jobs(config: Config) -> tuple[list[dict], list[dict]]:
    """The runs: those that need nothing (experts first), and the discovery runs that need an expert."""
    first = [{"sweep": "expert", "task": t, "friction": "clean", "method": "PPO", "seed": 0} for t in config.discovery_tasks]
    first += [{"sweep": "main", "task": t, "friction": f, "method": m, "seed": s}
              for t in config.tasks for f in config.frictions for m in config.methods for s in config.seeds]
    first += [{"sweep": "ablation", "task": t, "friction": f, "method": "DGPPO", "surprisal": k, "seed": s}
              for t in config.ablation_tasks for f in config.ablation_frictions for k in config.surprisals
              for s in config.seeds]
    then = [{"sweep": "discovery", "task": t, "friction": "discovery", "method": m, "seed": s}
            for t in config.discovery_tasks for m in config.discovery_methods for s in config.seeds]
    return first, then


def run_job(job: dict, config: Config, out_dir: str, tensorboard_log: str | None = None) -> dict:
    """Train one job of :func:`jobs`; return its record (the expert job also saves the model)."""
    import torch

    from dg_envs.algos import get_algorithm
    from dg_envs.algos.weighting import DelightMixin
    from dg_envs.wrappers import PolicyOracle

    torch.set_num_threads(1)
    task, method, sweep = job["task"], job["method"], job["sweep"]
    params = hyperparams(method, task)
    params.pop("policy"), params.pop("n_envs")
    timesteps = params.pop("n_timesteps")
    if sweep == "expert":
        timesteps = config.expert_timesteps
    elif config.timesteps is not None:
        timesteps = config.timesteps
    n_steps = params.pop("n_steps")
    updates = max(timesteps // n_steps, 1)
    algo_kwargs = dict(params)
    if sweep == "ablation":
        algo_kwargs["policy_kwargs"] = {"log_std_init": config.ablation_log_std_init}
    if "surprisal" in job:  # DG's option; a PPO job started narrow has none
        algo_kwargs["surprisal"] = job["surprisal"]
    if issubclass(get_algorithm(method), DelightMixin):
        # This experiment's DGPPO is the sample gate: DGPPO's default when its records were made.
        algo_kwargs["box_gate"] = "sample"
    if sweep == "discovery":
        frictions = {"discovery": {"p": config.discovery_p, "oracle": PolicyOracle.load(expert_path(out_dir, task))}}
    else:
        frictions = friction_settings(config, gym.make(task).action_space.high)[job["friction"]]
    spec = RunSpec(algo=get_algorithm(method), env_id=task, seed=job["seed"], total_updates=updates, n_steps=n_steps,
                   frictions=frictions, algo_kwargs=algo_kwargs, eval_every=max(updates // config.eval_points, 1),
                   tensorboard_log=tensorboard_log)
    evaluate = partial(mean_return, env_id=task, episodes=config.eval_episodes)
    result = train_run(spec, evaluate, keep_model=sweep == "expert")
    if sweep == "expert":
        result.pop("model").save(expert_path(out_dir, task))
    curve = [(u * n_steps, score) for u, score in result["curve"]]
    return {**job, "timesteps": updates * n_steps, "return": result["final"], "curve": curve,
            "seconds": result["seconds"]}


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None, out_dir: Path | str = ".") -> list[dict]:
    """Every sweep, ``config.jobs`` runs at a time, resumed from ``out_dir``'s records; one record per run.

    ``out_dir``: where the experts are saved (``mujoco-expert-<task>.zip``), the discovery oracles.
    A discovery run starts once its task's expert is saved.
    """
    from dg_envs.algos import get_algorithm

    for method in {*config.methods, *config.discovery_methods}:  # an unknown name fails before any run
        get_algorithm(method)
    first, then = jobs(config)
    experts = {job["task"]: job for job in first if job["sweep"] == "expert"}
    work = partial(run_job, config=config, out_dir=str(out_dir), tensorboard_log=tensorboard_log)
    return run_sweep(NAME, config, first + then, work, out_dir, GRID_FIELDS, progress=progress,
                     needs=lambda job: experts[job["task"]] if job["sweep"] == "discovery" else None)


def _returns(records: list[dict], **where) -> list[float]:
    return [r["return"] for r in records if all(r.get(k) == v for k, v in where.items())]


def analyse(records: list[dict], out_dir: Path) -> str:
    """Tables (task x friction x method; surprisal ablation; discovery) and learning curves."""
    main = [r for r in records if r["sweep"] == "main"]
    tables = []
    if main:
        tasks = list(dict.fromkeys(r["task"] for r in main))
        frictions = list(dict.fromkeys(r["friction"] for r in main))
        methods = list(dict.fromkeys(r["method"] for r in main))
        budget = {t: next(r["timesteps"] for r in main if r["task"] == t) for t in tasks}
        tables.append("Final return of the greedy policy (mean ± std over seeds; higher is better):\n\n" + markdown_table(
            ["task (timesteps)", "friction"] + methods,
            [[f"{t} ({budget[t]:,})", f] + [format_mean_spread(_returns(main, task=t, friction=f, method=m), ".4g")
                                             for m in methods] for t in tasks for f in frictions]))
    ablation = [r for r in records if r["sweep"] == "ablation"]
    for friction in dict.fromkeys(r["friction"] for r in ablation):
        rows = [r for r in ablation if r["friction"] == friction]
        atasks = list(dict.fromkeys(r["task"] for r in rows))
        kinds = list(dict.fromkeys(r["surprisal"] for r in rows))
        tables.append(f"Surprisal ablation, DGPPO, {friction}, policy started narrow (log std -2):\n\n"
                      + markdown_table(["surprisal"] + atasks,
                                       [[k] + [format_mean_spread(_returns(rows, task=t, surprisal=k), ".4g")
                                               for t in atasks] for k in kinds]))
    discovery = [r for r in records if r["sweep"] in ("discovery", "expert")]
    if discovery:
        rows = [[f"{r['task']}", "expert PPO (the oracle)", format_mean_spread([r["return"]], ".4g")]
                for r in discovery if r["sweep"] == "expert"]
        rows += [[t, m, format_mean_spread(_returns(discovery, sweep="discovery", task=t, method=m), ".4g")]
                 for t in dict.fromkeys(r["task"] for r in discovery if r["sweep"] == "discovery")
                 for m in dict.fromkeys(r["method"] for r in discovery if r["sweep"] == "discovery")]
        tables.append("Rare discovery, the oracle a saved expert PPO:\n\n" + markdown_table(["task", "method", "return"], rows))
    table = "\n\n".join(tables)

    # Learning curves, one panel per task: the main sweep's (method x friction), else the ablation's.
    shown, line = (main, ("method", "friction")) if main else (ablation, ("surprisal", "friction"))
    panels = list(dict.fromkeys(r["task"] for r in shown))
    colors = {c: f"C{i}" for i, c in enumerate(dict.fromkeys(r[line[0]] for r in shown))}
    styles = dict(zip(dict.fromkeys(r[line[1]] for r in shown), ["-", "--", ":", "-."]))
    fig, axes = new_figure(ncols=max(len(panels), 1), width=3.6, height=3.2)
    for ax, task in zip(axes, panels):
        for color_key, style_key in dict.fromkeys((r[line[0]], r[line[1]]) for r in shown):
            group = [r for r in shown if (r["task"], r[line[0]], r[line[1]]) == (task, color_key, style_key)]
            if group:
                ax.plot(*_mean_curve(group), styles[style_key], color=colors[color_key], label=f"{color_key}, {style_key}")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("timesteps", fontsize=8)
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("greedy return")
    axes[0].legend(fontsize=6)
    return write_page(out_dir, NAME, table, fig)


def _mean_curve(records: list[dict]) -> tuple[list[int], np.ndarray]:
    """Timesteps and the mean over runs of their learning curves (runs of one setting share the steps)."""
    steps = [step for step, _ in records[0]["curve"]]
    return steps, np.mean([[value for _, value in r["curve"]] for r in records], axis=0)
