"""Experiment ``dmc-suite``: PPO vs DGPPO on six DeepMind Control Suite tasks, clean and under the buggy actor.

The DG paper's continuous-control claim (arXiv 2603.14608; PAPERS.md) is on 28 Suite tasks: DG
is never the worst method, has the lowest aggregate regret, and beats PPO and REINFORCE. This
experiment runs the six tasks registered as ``dg_envs/dmc-<domain>-<task>-v0``
(:data:`dg_envs.envs.DMC_IDS`: cartpole-swingup, reacher-easy, cheetah-run, walker-walk,
finger-spin, ball_in_cup-catch; the ``dmc`` extra), 300k steps a run (a 2-CPU budget; the paper
trains far longer), for each of

* ``frictions``: ``clean``, and ``bug``: with probability ``bug_p`` a step's action is the
  landmine "full torque on every actuator" (the action space's upper bound), reported as
  certain (:class:`~dg_envs.wrappers.BuggyActor`), as ``mujoco``'s ``bug`` setting;
* ``methods``: PPO (SB3's, trained on the executed action) and DGPPO with the sample gate and with
  its default gate (``scale_leave_one_out``, chosen by the ``widening`` experiment), with the same settings
  (:func:`dg_envs.experiments.widening.hyperparams`: the Zoo's HalfCheetah-v5 entry of
  ``dgppo.yml``: 1024 steps per update, minibatches of 256, 10 epochs, Adam 3e-4, gamma 0.99,
  GAE 0.95, clip 0.2, no entropy bonus, std started at 1); a ``"DGPPO:<box_gate>"`` label adds a
  variant (:func:`~dg_envs.experiments.widening.parse_method`).

**Aggregation, as the paper does it**: a run's score is its final greedy return over ``1000``
(a Suite episode is 1,000 steps of reward in [0, 1]; :func:`max_return`); per task and friction
a method's *regret* is the best method's mean score minus its own; the aggregate score and the
aggregate regret are their means over tasks. The claims table judges the per-seed aggregate
scores (seed ``s``: the mean over tasks of seed ``s``'s scores): "DGPPO's aggregate >= PPO's"
clean (:data:`NOT_WORSE_RULE`) and "> PPO's" under the buggy actor
(:data:`~dg_envs.experiments.paper.VERDICT_RULES`). Every run also records its throughput
(environment steps per second of ``learn``, evaluations excluded), so the target "DGPPO's
throughput >= 0.95 x PPO's on a Suite task" is read from the same runs: the page gives the
ratio of the medians, per task and over all runs (timings of runs that shared the machine with
others: a ratio of medians over many interleaved runs, not a benchmark).

``InvertedPendulum-v5`` (returns also in [0, 1000]) stands in for a Suite task where the
``dmc`` extra is missing: the quick mode uses it there, and the page says so.

Example:
    >>> from dg_envs.experiments import dmc_suite
    >>> len(dmc_suite.Config().tasks), dmc_suite.max_return("dg_envs/dmc-cheetah-run-v0")
    (6, 1000.0)
    >>> dmc_suite.regrets({"A": {"PPO": 0.5, "DGPPO": 0.75}, "B": {"PPO": 0.5, "DGPPO": 0.25}})
    {'PPO': 0.125, 'DGPPO': 0.125}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from dg_envs.envs.dmc import DMC_IDS
from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, run_sweep, write_page
from dg_envs.experiments.paper import (
    HOLDS, NOT_HOLD, NOT_MEASURED, VERDICT_RULES, Claim, Verdict, claims_table, judge,
)
from dg_envs.experiments.widening import (
    LABEL_NOTE, check_methods, check_tasks, dmc_available, is_suite_task, parse_method, run_settings, train_box_run,
)
from dg_envs.validation import check_choice, check_int, check_probability

NAME = "dmc-suite"

#: Config fields that change no run's result: which runs exist (a run's algorithm, keyword arguments
#: and budget are in its job's ``settings``), left out of the run keys' hash.
GRID_FIELDS = ("tasks", "methods", "frictions", "timesteps")

FRICTIONS = ("clean", "bug")
#: Tasks that stand in for a Suite task where the ``dmc`` extra is missing (returns in [0, 1000] too).
STAND_INS = ("InvertedPendulum-v5",)
#: The throughput target (issue 14): DGPPO's env steps/s at least this times PPO's.
THROUGHPUT_TARGET = 0.95
HOLDS_WITHIN_NOISE = "holds within noise"

NOT_WORSE_RULE = """\
How a ">=" claim is judged (`dg_envs.experiments.dmc_suite.not_worse_verdict`), from the per-seed
aggregate scores of `a` and `b` (means `ma`, `mb`; `noise` as above): **holds** if `ma >= mb`;
**holds within noise** if `a` is behind by at most `noise`; **does not hold** otherwise."""


def max_return(task: str) -> float:
    """The best return an episode of ``task`` can have: 1,000 for a Suite task (1,000 steps of reward <= 1), a stand-in too.

    >>> max_return("InvertedPendulum-v5")
    1000.0
    """
    if is_suite_task(task) or task in STAND_INS:
        return 1000.0
    raise ValueError(f"tasks: {task!r} is neither a Suite id (dg_envs/dmc-...) nor a stand-in {STAND_INS}")


@dataclass
class Config:
    """Settings of the Suite sweep.

    Wall time, measured on this machine (2 cores shared with other sweeps, load 7-10; one torch
    thread per run; 10,240 steps of cheetah-run with these settings): PPO 1,095, 555 and 265
    steps/s in three runs as the load grew, DGPPO 717, 541 and 329; take ~600 steps/s per run
    (the six tasks' physics costs about the same; the networks are the same size). A greedy
    episode of 1,000 steps took 1.3 s. The sweep: 6 tasks x 2 frictions x 2 methods x 3 seeds = 72
    runs x 300k = 21.6M steps / 600 = 36,000 s = 10 core-hours; evaluations 72 runs x 25 episodes x
    1.3 s = 0.65 core-hours. About 10.7 core-hours: ~5.3 hours with ``jobs=2`` (~3.3 at ~1,000
    steps/s), longer while other sweeps hold the cores. A ``DGPPO:<box_gate>`` label adds half again:
    the default three methods make 108 runs (seed 0's 36 took ~500-780 s each beside other
    sweeps, about 3 hours a seed with ``jobs=2``).
    """

    tasks: tuple[str, ...] = DMC_IDS
    """Suite ids (``dg_envs/dmc-<domain>-<task>-v0``; the ``dmc`` extra), or a stand-in of :data:`STAND_INS`."""
    methods: tuple[str, ...] = ("PPO", "DGPPO", "DGPPO:scale_leave_one_out")
    """Method labels (:func:`~dg_envs.experiments.widening.parse_method`): ``"DGPPO"`` is the sample gate,
    ``"DGPPO:scale_leave_one_out"`` DGPPO's default since 2026-12-04; e.g. add ``"DGPPO:mean_only"``."""
    frictions: tuple[str, ...] = FRICTIONS
    """``"clean"`` and/or ``"bug"`` (the full-torque landmine with probability ``bug_p``)."""
    timesteps: int = 300_000
    """Budget per run (environment steps)."""
    bug_p: float = 0.1
    """Probability that a step's action is the full-torque landmine (``bug``)."""
    std_every: int = 10
    """The action std (and the gates' means) is recorded every this many updates (1024 steps each)."""
    eval_points: int = 5
    """Greedy evaluations along each run (learning curves), the last one at the end."""
    eval_episodes: int = 5
    """Clean greedy episodes per evaluation (episode ``i`` from ``reset(seed=10_000 + i)``)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    jobs: int = 1
    """Runs in parallel (processes, one torch thread each)."""

    @classmethod
    def quick(cls) -> Config:
        """A minute or two on 2 CPU cores: cartpole-swingup and reacher-easy (InvertedPendulum-v5 without the Suite).

        Two updates a run, an evaluation after each, one episode.
        """
        tasks = ("dg_envs/dmc-cartpole-swingup-v0", "dg_envs/dmc-reacher-easy-v0") if dmc_available() else STAND_INS
        return cls(tasks=tasks, timesteps=2048, std_every=1, eval_points=2, eval_episodes=1)


def check_config(config: Config) -> None:
    """Every setting checked before any run (``ValueError`` naming it)."""
    check_tasks(config.tasks, "tasks")
    for task in config.tasks:
        max_return(task)
    check_methods(config.methods, "methods")
    if not isinstance(config.frictions, (tuple, list)) or not config.frictions:
        raise ValueError(f"frictions must name at least one of {FRICTIONS}, got {config.frictions!r}")
    for friction in config.frictions:
        check_choice(friction, "frictions", FRICTIONS)
    if len(set(config.frictions)) != len(config.frictions):
        raise ValueError(f"frictions must not repeat a setting, got {list(config.frictions)}")
    check_probability(config.bug_p, "bug_p")
    for field in ("timesteps", "std_every", "eval_points", "eval_episodes"):
        check_int(getattr(config, field), field, low=1)


def grid(config: Config) -> list[dict[str, Any]]:
    """The runs: every task x friction x method x seed."""
    return [{"task": t, "friction": f, "method": m, "seed": s, "settings": run_settings(t, m, config.timesteps)}
            for t in config.tasks for f in config.frictions for m in config.methods for s in config.seeds]


def friction_settings(config: Config, task: str, friction: str) -> dict[str, Any]:
    """``apply_frictions`` keyword arguments of ``friction`` on ``task`` (the landmine: the action space's upper bound)."""
    if friction == "clean":
        return {}
    import gymnasium as gym

    space = gym.make(task).action_space
    return {"bug": {"p": config.bug_p, "landmine": np.asarray(space.high, dtype=space.dtype)}}


def run_job(job: dict, config: Config, tensorboard_log: str | None = None) -> dict:
    """Train one grid point; its record fields (:func:`~dg_envs.experiments.widening.train_box_run`) and its score."""
    result = train_box_run(job["task"], job["settings"], job["seed"],
                           frictions=friction_settings(config, job["task"], job["friction"]),
                           eval_points=config.eval_points, eval_episodes=config.eval_episodes,
                           std_every=config.std_every, tensorboard_log=tensorboard_log)
    return {**result, "score": result["return"] / max_return(job["task"])}


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """Every grid point, ``config.jobs`` at a time, resumed from ``out_dir``'s records."""
    check_config(config)
    work = partial(run_job, config=config, tensorboard_log=tensorboard_log)
    return run_sweep(NAME, config, grid(config), work, out_dir, GRID_FIELDS, progress=progress)


# -- aggregation, claims, the page --------------------------------------------------------------------

def regrets(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """Aggregate regret per method: the mean over tasks of (the task's best mean score - the method's).

    ``scores``: task -> method -> mean score; methods missing on a task are left out there.
    """
    out: dict[str, list[float]] = {}
    for by_method in scores.values():
        best = max(by_method.values())
        for m, s in by_method.items():
            out.setdefault(m, []).append(best - s)
    return {m: float(np.mean(v)) for m, v in out.items()}


def mean_scores(records: list[dict], friction: str) -> dict[str, dict[str, float]]:
    """Task -> method -> mean score over seeds, for ``friction``."""
    rows = [r for r in records if r["friction"] == friction]
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        out.setdefault(r["task"], {}).setdefault(r["method"], [])
        out[r["task"]][r["method"]].append(r["score"])
    return {t: {m: float(np.mean(v)) for m, v in by.items()} for t, by in out.items()}


def seed_aggregates(records: list[dict], friction: str, method: str) -> list[float]:
    """Per seed, the mean score over tasks (only seeds that ran every task of the records)."""
    tasks = list(dict.fromkeys(r["task"] for r in records))
    rows = [r for r in records if r["friction"] == friction and r["method"] == method]
    out = []
    for seed in sorted({r["seed"] for r in rows}):
        by_task = {r["task"]: r["score"] for r in rows if r["seed"] == seed}
        if all(t in by_task for t in tasks):
            out.append(float(np.mean([by_task[t] for t in tasks])))
    return out


def not_worse_verdict(a: list[float], b: list[float], names: tuple[str, str] = ("a", "b")) -> tuple[str, str]:
    """The rule for "a >= b" (higher is better; :data:`NOT_WORSE_RULE`); the reason names the methods ``names``.

    >>> not_worse_verdict([0.5, 0.6], [0.5, 0.5])[0], not_worse_verdict([0.5, 0.6], [0.56, 0.56])[0]
    ('holds', 'holds within noise')
    >>> not_worse_verdict([0.1, 0.1], [0.5, 0.5], names=("DGPPO", "PPO"))
    ('does not hold', 'PPO ahead by 0.4 (noise 0)')
    """
    arr_a, arr_b = np.asarray(a, float), np.asarray(b, float)
    sem = [float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0 for x in (arr_a, arr_b)]
    noise, gap = math.hypot(*sem), float(arr_b.mean() - arr_a.mean())
    name_a, name_b = names
    if gap <= 0:
        return HOLDS, (f"{name_a} ahead by {-gap:.3g} (noise {noise:.2g})" if gap < 0
                       else f"{name_a} = {name_b} (noise {noise:.2g})")
    if gap <= noise:
        return HOLDS_WITHIN_NOISE, f"{name_b} ahead by {gap:.3g}, within noise {noise:.2g}"
    return NOT_HOLD, f"{name_b} ahead by {gap:.3g} (noise {noise:.2g})"


def claims(records: list[dict]) -> list[tuple[Claim, Verdict, str]]:
    """The paper's claim per DG variant and friction: ">= PPO" clean, "> PPO" under the buggy actor."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    frictions = list(dict.fromkeys(r["friction"] for r in records))
    tasks = list(dict.fromkeys(r["task"] for r in records))
    seeds = len({r["seed"] for r in records})
    paper = "DG: lowest aggregate regret on 28 Suite tasks, ahead of PPO (arXiv 2603.14608)"
    rows = []
    for label in [m for m in methods if parse_method(m)[0] != "PPO"]:
        for friction in frictions:
            values = {m: seed_aggregates(records, friction, m) for m in (label, "PPO")}
            budget = (f"{records[0]['timesteps']:,} steps, {len(tasks)} task{'s' if len(tasks) > 1 else ''}, "
                      f"{seeds} seed{'s' if seeds > 1 else ''}")
            if friction == "clean":
                claim = Claim(f"{label}'s aggregate >= PPO's, clean", paper, a=label, b="PPO", factor=1.0,
                              higher_is_better=True)
                if all(values.values()):
                    verdict, reason = not_worse_verdict(values[label], values["PPO"], names=(label, "PPO"))
                    ours = " vs ".join(f"{m} {format_mean_spread(values[m])}" for m in (label, "PPO"))
                    rows.append((claim, Verdict(verdict, ours, reason), budget))
                else:
                    rows.append((claim, Verdict(NOT_MEASURED, "", "no complete seed of both"), budget))
            else:
                claim = Claim(f"{label}'s aggregate > PPO's, buggy actor", paper + "; the distributed paper: DG resists "
                              "an actor bug (arXiv 2603.20521)", a=label, b="PPO", factor=1.0, higher_is_better=True)
                rows.append((claim, judge(claim, values), budget))
    return rows


def throughput(records: list[dict]) -> tuple[str, list[tuple[str, float]]]:
    """The throughput table (median steps/s per task and method, DG/PPO ratio of the medians) and the ratios."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    others = [m for m in methods if m != "PPO"]
    tasks = list(dict.fromkeys(r["task"] for r in records))

    def median(rows, m):
        values = [r["steps_per_second"] for r in rows if r["method"] == m]
        return float(np.median(values)) if values else math.nan

    table_rows, ratios = [], []
    for task in tasks + ["all runs"]:
        rows = records if task == "all runs" else [r for r in records if r["task"] == task]
        medians = {m: median(rows, m) for m in methods}
        cells = [f"{medians[m]:.0f}" for m in methods]
        for m in others:
            ratio = medians[m] / medians["PPO"] if "PPO" in medians else math.nan
            cells.append(f"{ratio:.3f}")
            if m == "DGPPO":
                ratios.append((task, ratio))
        table_rows.append([task.removeprefix("dg_envs/")] + cells)
    header = ["task"] + [f"{m} steps/s" for m in methods] + [f"{m} / PPO" for m in others]
    return markdown_table(header, table_rows), ratios


def analyse(records: list[dict], out_dir: Path) -> str:
    """Per-task and aggregate tables (score, regret), the claims, throughput, and the figure."""
    tasks = list(dict.fromkeys(r["task"] for r in records))
    frictions = list(dict.fromkeys(r["friction"] for r in records))
    methods = list(dict.fromkeys(r["method"] for r in records))
    seeds = len({r["seed"] for r in records})
    budget = records[0]["timesteps"]

    def returns(**where):
        return [r["return"] for r in records if all(r[k] == v for k, v in where.items())]

    per_task = markdown_table(["task", "friction"] + methods, [
        [t.removeprefix("dg_envs/"), f] + [format_mean_spread(returns(task=t, friction=f, method=m), ".4g")
                                           for m in methods] for t in tasks for f in frictions])
    aggregate_rows = []
    for f in frictions:
        scores = mean_scores(records, f)
        regret = regrets(scores)
        worst = {m: sum(1 for by in scores.values() if m in by and all(by[m] < v for o, v in by.items() if o != m)
                        and len(by) > 1) for m in methods}
        for m in methods:
            aggregate_rows.append([f, m, format_mean_spread(seed_aggregates(records, f, m)),
                                   f"{regret.get(m, math.nan):.3f}", f"{worst[m]} of {len(scores)}"])
    aggregate = markdown_table(["friction", "method", "aggregate score (per-seed mean over tasks)", "aggregate regret",
                                "tasks where worst (alone)"], aggregate_rows)
    speed, ratios = throughput(records)
    suite = [t for t in tasks if is_suite_task(t)]
    reached = [t for t, ratio in ratios if t != "all runs" and ratio >= THROUGHPUT_TARGET]
    overall = dict(ratios).get("all runs", math.nan)
    speed_line = (f"DGPPO / PPO, ratio of the medians over all runs: **{overall:.3f}** (target >= {THROUGHPUT_TARGET}: "
                  f"**{'reached' if overall >= THROUGHPUT_TARGET else 'not reached'}**); reached on "
                  f"{len(reached)} of {len(tasks)} tasks. These runs ran at different times beside other jobs, so "
                  "the ratios mix the algorithms' cost with the machine's load; the cost alone is measured by "
                  "`dg_envs.bench.algos.bench_suite_throughput` (interleaved repeats in one process, part of "
                  "`dg-envs bench`)." if ratios else "No DGPPO runs: no throughput ratio.")
    stand_in = ("" if len(suite) == len(tasks) else
                f"\n\n**Not the Suite**: {', '.join(t for t in tasks if t not in suite)} stood in for Suite tasks "
                "(the `dmc` extra was not installed); scores are return / 1000 there too.")
    text = (f"Budget: {budget:,} steps a run, {seeds} seed{'s' if seeds > 1 else ''}; the DG paper trains on 28 Suite "
            f"tasks far longer. Score = final greedy return / 1000; regret = the task's best mean score - the "
            f"method's. {LABEL_NOTE}{stand_in}\n\n## Final greedy return per task (mean ± std over seeds)\n\n"
            f"{per_task}\n\n"
            f"## Aggregate over tasks\n\n{aggregate}\n\n## The paper's claim\n\n{claims_table(claims(records))}\n\n"
            f"{VERDICT_RULES}\n\n{NOT_WORSE_RULE}\n\n## Throughput (env steps/s of learn, evaluations excluded; "
            f"median over runs)\n\n{speed}\n\n{speed_line}")

    fig, (ax_task, ax_agg, ax_curve) = new_figure(ncols=3, width=4.2)
    combos = [(m, f) for f in frictions for m in methods]
    width = 0.8 / max(len(combos), 1)
    for i, (m, f) in enumerate(combos):
        means = [np.mean([r["score"] for r in records if (r["task"], r["method"], r["friction"]) == (t, m, f)] or [np.nan])
                 for t in tasks]
        hatch = "//" if f != "clean" else None
        ax_task.bar(np.arange(len(tasks)) + i * width, means, width, label=f"{m}, {f}", color=f"C{methods.index(m)}",
                    hatch=hatch, alpha=0.85)
        values = seed_aggregates(records, f, m)
        if values:
            ax_agg.bar(i, np.mean(values), 0.7, yerr=np.std(values), capsize=3, color=f"C{methods.index(m)}",
                       hatch=hatch, alpha=0.85)
        runs = [r for r in records if (r["method"], r["friction"]) == (m, f)]
        n = min(len(r["curve"]) for r in runs)
        steps = [s for s, _ in runs[0]["curve"][:n]]
        curve = np.mean([[v / max_return(r["task"]) for _, v in r["curve"][:n]] for r in runs], axis=0)
        ax_curve.plot(steps, curve, marker=".", color=f"C{methods.index(m)}", linestyle="--" if f != "clean" else "-",
                      label=f"{m}, {f}")
    ax_task.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2)
    ax_task.set_xticklabels([t.removeprefix("dg_envs/dmc-").removesuffix("-v0") for t in tasks], rotation=30,
                            fontsize=7, ha="right")
    ax_task.set_ylabel("score (return / 1000)")
    ax_task.set_title("per task (mean over seeds)", fontsize=9)
    ax_task.legend(fontsize=6)
    ax_agg.set_xticks(range(len(combos)))
    ax_agg.set_xticklabels([f"{m}\n{f}" for m, f in combos], fontsize=7)
    ax_agg.set_title("aggregate score (mean over tasks; ± std over seeds)", fontsize=9)
    ax_curve.set_xlabel("timesteps")
    ax_curve.set_ylabel("mean score over tasks")
    ax_curve.set_title("learning curves (mean over tasks and seeds)", fontsize=9)
    ax_curve.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
    ax_curve.legend(fontsize=6)
    return write_page(out_dir, NAME, text, fig)
