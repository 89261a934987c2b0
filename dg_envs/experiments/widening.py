"""Experiment ``widening``: which ``box_gate`` should DGPPO's default be? The action std over training, decided by a rule.

Issue 14's lead: on clean Hopper DGPPO's Gaussian widened (action std 1.0 -> 2.12 after 99k
steps, PPO's stayed at 1.00), because with the entropy-centred surprisal the sample gate grows
with ``A * (z**2 - 1)``, the score of ``log sigma``: an implicit entropy bonus. The candidates
are the options of ``box_gate`` (:data:`dg_envs.algos.weighting.BOX_GATES`,
:func:`~dg_envs.algos.weighting.box_gates`): ``sample`` (today's default), ``mean_only``,
``scale_leave_one_out``, ``per_dimension``, ``clipped`` (the DG paper's clipped log-density).
Two sweeps, one page:

* **ablation**: PPO and DGPPO with every ``box_gate`` on ``tasks`` (Hopper-v5, HalfCheetah-v5 and
  the Suite's walker-walk by default; a Suite id needs the ``dmc`` extra), clean, ``timesteps``
  each (300k: enough to choose, a third of the long budget). Every run records the action std
  (mean over dimensions of ``exp(log_std)``, SB3's ``train/std``) every ``std_every`` updates,
  the DG gates' means at the same points (``train/gate_mean``, ``train/scale_gate_mean``), the
  greedy return along training and at the end, and its throughput.
* **long**: ``long_methods`` (PPO, DGPPO) and the ablation's choice at ``long_timesteps`` (1M,
  the issue's budget) on ``long_tasks`` (Hopper-v5, HalfCheetah-v5). With ``long_box_gate=None``
  the choice is the ablation's (:func:`choose_default`), so those runs start once the ablation is
  complete; a resumed sweep makes the same choice from the same records.

**The rule that picks the default** (:func:`choose_default`, printed on the page): per task,
each method's mean final return is min-max normalised over the ablation's methods (PPO
included: 0 = the worst method's mean, 1 = the best's); a method's aggregate is the mean over
tasks. Among the DGPPO variants, the best aggregate wins; variants within
:data:`TIE_TOLERANCE` of it tie, and of those the one that widens least wins (widening = the
geometric mean over tasks of its final action std / PPO's on the task; without PPO, of the final
std itself), then the order of ``BOX_GATES``.

Hyperparameters: the Zoo's ``dgppo.yml`` entry of the task for PPO and DGPPO alike (as
``mujoco``); a Suite task, which has no entry, takes HalfCheetah-v5's (:data:`SUITE_SETTINGS_FROM`:
1024 steps per update, minibatches of 256, 10 epochs, Adam 3e-4, gamma 0.99, GAE 0.95, clip 0.2,
no entropy bonus: SB3's PPO defaults but for the larger minibatch, CleanRL's continuous PPO
settings), no observation or reward normalisation, log std started at 0 (std 1).

Example:
    >>> from dg_envs.experiments import widening
    >>> widening.parse_method("DGPPO:mean_only")
    ('DGPPO', 'mean_only')
    >>> [j["method"] for j in widening.ablation_jobs(widening.Config(tasks=("Hopper-v5",), seeds=(0,)))]
    ['PPO', 'DGPPO', 'DGPPO:mean_only', 'DGPPO:scale_leave_one_out', 'DGPPO:per_dimension', 'DGPPO:clipped']
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dg_envs.experiments.common import (
    format_mean_spread, load_records, markdown_table, new_figure, run_key, run_sweep, shared_settings, write_page,
)
from dg_envs.validation import check_choice, check_int

NAME = "widening"

#: Config fields that change no run's result: which runs exist and their budgets (each job's
#: ``settings`` holds what it resolves to: algorithm, keyword arguments, timesteps), left out of
#: the run keys' hash.
GRID_FIELDS = ("tasks", "methods", "timesteps", "long_tasks", "long_methods", "long_box_gate", "long_timesteps")

#: Aggregates (normalised return, 0..1) this close to the best tie (:func:`choose_default`).
TIE_TOLERANCE = 0.05
#: The Zoo entry whose settings a task without one (a Suite task) trains with.
SUITE_SETTINGS_FROM = "HalfCheetah-v5"
#: Method labels: ``"ALGORITHM"`` or ``"ALGORITHM:box_gate"`` (a DG/Kondo algorithm's option).
METHODS = ("PPO", "DGPPO", "DGPPO:mean_only", "DGPPO:scale_leave_one_out", "DGPPO:per_dimension", "DGPPO:clipped")
#: What a label without a gate means on the pages (:func:`model_arguments`).
LABEL_NOTE = ('`DGPPO` (no gate named) is the sample gate, `box_gate="sample"`: DGPPO\'s default until '
              '2026-12-04, when the `widening` experiment\'s choice, `"scale_leave_one_out"`, replaced it.')

RULE = f"""\
How the default is chosen (`dg_envs.experiments.widening.choose_default`): per task, each
method's mean final greedy return is min-max normalised over the ablation's methods (PPO
included; 0 = the worst method's mean, 1 = the best's) and a method's aggregate is the mean over
tasks. Among the DGPPO variants the best aggregate wins; variants within {TIE_TOLERANCE} of it
tie, and of those the one that widens least (geometric mean over tasks of its final action std
/ PPO's) wins, then the order of `BOX_GATES`. Only tasks on which every candidate has runs count."""


def dmc_available() -> bool:
    """Whether the DeepMind Control Suite ids can be made here (the ``dmc`` extra, ``mujoco`` < 4)."""
    if importlib.util.find_spec("dm_control") is None or importlib.util.find_spec("shimmy") is None:
        return False
    import mujoco

    return int(mujoco.__version__.split(".")[0]) < 4


def is_suite_task(task: str) -> bool:
    """Whether ``task`` is one of our DeepMind Control Suite ids.

    >>> is_suite_task("dg_envs/dmc-cheetah-run-v0"), is_suite_task("HalfCheetah-v5")
    (True, False)
    """
    return task.startswith("dg_envs/dmc-")


@dataclass
class Config:
    """Settings of the widening sweeps (the ablation that chooses, the long runs).

    Wall time, measured on this machine (2 cores shared with other sweeps, load 7-10; one torch
    thread per run; 10,240 steps with these settings, the ``dmc`` venv): PPO 1,095, 555 and 265
    steps/s on cheetah-run in three runs as the load grew, DGPPO 717, 541 and 329; Hopper-v5 PPO
    818, DGPPO 568; HalfCheetah-v5 PPO 833, DGPPO 620. Take ~600 steps/s per run. One ``train()``
    (10 epochs of 4 minibatches) took 0.34 s for PPO, 0.36 s for DGPPO, 0.40 s for ``mean_only``
    (median of 5): the rollout, not the gate, dominates. The ablation: 6 methods x 3 tasks x 3
    seeds = 54 runs x 300k = 16.2M steps / 600 = 27,000 s = 7.5 core-hours; the long runs: 3
    methods x 2 tasks x 3 seeds = 18 runs x 1M = 18M steps = 8.3 core-hours (5.6 if the rule keeps
    ``sample``: 2 methods); evaluations (5 x 5 greedy episodes a run, up to 1.3 s each) ~0.5.
    About 16 core-hours in all: ~8 hours with ``jobs=2`` (~5 at the ~1,000 steps/s of a less
    loaded moment), longer while other sweeps hold the cores.
    """

    tasks: tuple[str, ...] = ("Hopper-v5", "HalfCheetah-v5", "dg_envs/dmc-walker-walk-v0")
    """The ablation's tasks (Box actions; Suite ids need the ``dmc`` extra)."""
    methods: tuple[str, ...] = METHODS
    """The ablation's method labels (:func:`parse_method`): PPO and DGPPO with each ``box_gate``."""
    timesteps: int = 300_000
    """The ablation's budget per run."""
    long_tasks: tuple[str, ...] = ("Hopper-v5", "HalfCheetah-v5")
    """The long runs' tasks (empty: no long runs)."""
    long_methods: tuple[str, ...] = ("PPO", "DGPPO")
    """The long runs' method labels; the chosen variant is added to them."""
    long_box_gate: str | None = None
    """The variant the long runs add: None = the ablation's choice (:func:`choose_default`), or a ``box_gate``."""
    long_timesteps: int = 1_000_000
    """The long runs' budget per run."""
    std_every: int = 5
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
        """A minute or two on 2 CPU cores: InvertedPendulum-v5, and cartpole-swingup where the Suite is installed.

        Two updates a run (three for the long runs), every method, one evaluation episode.
        """
        tasks = ("InvertedPendulum-v5",) + (("dg_envs/dmc-cartpole-swingup-v0",) if dmc_available() else ())
        return cls(tasks=tasks, timesteps=2048, long_tasks=("InvertedPendulum-v5",), long_timesteps=3072, std_every=1,
                   eval_points=1, eval_episodes=1)


# -- methods, settings and one run (shared with dmc_suite) -------------------------------------------

def parse_method(label: str) -> tuple[str, str]:
    """A method label's algorithm name and ``box_gate`` (``"sample"`` unless given); ``ValueError`` naming ``methods``.

    >>> parse_method("PPO"), parse_method("DGPPO:clipped")
    (('PPO', 'sample'), ('DGPPO', 'clipped'))
    >>> parse_method("PPO:mean_only")
    Traceback (most recent call last):
    ...
    ValueError: methods: 'PPO:mean_only': box_gate is an option of the DG and Kondo algorithms, not of PPO
    """
    from dg_envs.algos import get_algorithm
    from dg_envs.algos.weighting import BOX_GATES, DelightMixin

    if not isinstance(label, str):
        raise ValueError(f"methods: a method label is a string 'ALGORITHM' or 'ALGORITHM:box_gate', got {label!r}")
    name, _, gate = label.partition(":")
    try:
        algo = get_algorithm(name)
        gate = check_choice(gate, "box_gate", BOX_GATES) if gate else "sample"
    except ValueError as error:
        raise ValueError(f"methods: {label!r}: {error}") from None
    if ":" in label and not issubclass(algo, DelightMixin):
        raise ValueError(f"methods: {label!r}: box_gate is an option of the DG and Kondo algorithms, not of {name}")
    return name, gate


def method_label(name: str, box_gate: str) -> str:
    """The label of ``name`` with ``box_gate`` (the default ``"sample"`` unnamed).

    >>> method_label("DGPPO", "sample"), method_label("DGPPO", "per_dimension")
    ('DGPPO', 'DGPPO:per_dimension')
    """
    return name if box_gate == "sample" else f"{name}:{box_gate}"


def check_methods(methods: tuple[str, ...], field: str = "methods") -> None:
    """Labels that parse, at least one, none repeated (``ValueError`` naming ``field``)."""
    if not isinstance(methods, (tuple, list)) or not methods:
        raise ValueError(f"{field} must name at least one method, got {methods!r}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"{field} must not repeat a label, got {list(methods)}")
    for label in methods:
        try:
            parse_method(label)
        except ValueError as error:
            raise ValueError(str(error).replace("methods:", f"{field}:", 1)) from None


def check_tasks(tasks: tuple[str, ...], field: str = "tasks", allow_empty: bool = False) -> None:
    """Registered ids, none repeated; a Suite id only where the ``dmc`` extra works (``ValueError`` naming ``field``)."""
    import gymnasium as gym

    import dg_envs  # noqa: F401  (registers the ids)

    if not isinstance(tasks, (tuple, list)) or (not tasks and not allow_empty):
        raise ValueError(f"{field} must name at least one task, got {tasks!r}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"{field} must not repeat a task, got {list(tasks)}")
    for task in tasks:
        if not isinstance(task, str) or task not in gym.registry:
            raise ValueError(f"{field}: {task!r} is not a registered Gymnasium id")
        if is_suite_task(task) and not dmc_available():
            raise ValueError(f"{field}: {task!r} needs the dmc extra: pip install -e \".[dmc]\" (dm_control, shimmy, "
                             f"mujoco<4)")


def hyperparams(task: str) -> dict[str, Any]:
    """PPO's and DGPPO's settings on ``task``: its ``dgppo.yml`` entry, a Suite task HalfCheetah-v5's (no budget).

    >>> hyperparams("dg_envs/dmc-cheetah-run-v0") == hyperparams("HalfCheetah-v5")
    True
    >>> sorted(hyperparams("Hopper-v5"))[:3]
    ['batch_size', 'clip_range', 'ent_coef']
    """
    from dg_envs.zoo import load_hyperparams

    params = load_hyperparams("dgppo", SUITE_SETTINGS_FROM if is_suite_task(task) else task)
    for key in ("n_timesteps", "policy", "n_envs"):
        params.pop(key, None)
    return {k: float(v) if isinstance(v, float) else v for k, v in params.items()}


def run_settings(task: str, label: str, timesteps: int) -> dict[str, Any]:
    """What a run of ``label`` on ``task`` resolves to (hashed into its run key): algorithm, keyword arguments, budget."""
    name, gate = parse_method(label)
    extra = {"box_gate": gate} if gate != "sample" else {}
    return {"algorithm": name, "timesteps": int(timesteps), **hyperparams(task), **extra}


def model_arguments(settings: dict[str, Any]) -> tuple[type, int, dict[str, Any]]:
    """The algorithm class, budget and keyword arguments that :func:`run_settings`' ``settings`` train with.

    A label without a gate is the sample gate (:func:`parse_method`), whatever the algorithm's
    default: its settings name no ``box_gate`` (so the records made before DGPPO's default
    changed keep their keys), and the gate is passed here.

    >>> algo, steps, kwargs = model_arguments(run_settings("Hopper-v5", "DGPPO", 2048))
    >>> algo.__name__, steps, kwargs["box_gate"], kwargs["n_steps"]
    ('DGPPO', 2048, 'sample', 1024)
    """
    from dg_envs.algos import get_algorithm
    from dg_envs.algos.weighting import DelightMixin

    kwargs = dict(settings)
    algo, timesteps = get_algorithm(kwargs.pop("algorithm")), kwargs.pop("timesteps")
    if issubclass(algo, DelightMixin):
        kwargs.setdefault("box_gate", "sample")
    return algo, timesteps, kwargs


class _TimedEvaluation:
    """An evaluator that keeps how long each call took (evaluations inside ``learn`` are not training)."""

    def __init__(self, evaluate):
        self.evaluate, self.seconds = evaluate, []

    def __call__(self, model) -> float:
        start = time.perf_counter()
        score = self.evaluate(model)
        self.seconds.append(time.perf_counter() - start)
        return score


def train_box_run(task: str, settings: dict[str, Any], seed: int, *, frictions: dict[str, Any] | None = None,
                  eval_points: int, eval_episodes: int, std_every: int, tensorboard_log: str | None = None) -> dict:
    """Train one run of :func:`run_settings`' ``settings`` on ``task``; the record fields every continuous-control run has.

    ``return``: the greedy policy's mean return over ``eval_episodes`` clean episodes at the end
    (:func:`dg_envs.experiments.mujoco.mean_return`); ``curve``: ``[(timesteps, return), ...]``;
    ``std_curve``, ``gate_curve``, ``final_std``: :func:`~dg_envs.experiments.training.train_run`'s;
    ``seconds``: the whole ``learn``; ``steps_per_second``: timesteps over ``learn``'s time less the
    evaluations inside it (throughput: rollouts and updates).
    """
    from dg_envs.experiments.mujoco import mean_return
    from dg_envs.experiments.training import RunSpec, train_run

    algo, timesteps, kwargs = model_arguments(settings)
    n_steps = kwargs.pop("n_steps")
    updates = max(timesteps // n_steps, 1)
    spec = RunSpec(algo=algo, env_id=task, seed=seed, total_updates=updates, n_steps=n_steps,
                   frictions=dict(frictions or {}), algo_kwargs=kwargs, eval_every=max(updates // eval_points, 1),
                   tensorboard_log=tensorboard_log, std_every=std_every)
    evaluate = _TimedEvaluation(partial(mean_return, env_id=task, episodes=eval_episodes))
    result = train_run(spec, evaluate)
    in_learn = sum(evaluate.seconds[:-1])  # the last evaluation runs after learn
    steps = updates * n_steps
    return {"timesteps": steps, "return": result["final"], "curve": [(u * n_steps, s) for u, s in result["curve"]],
            "std_curve": result.get("std_curve", []), "gate_curve": result.get("gate_curve", []),
            "final_std": result.get("final_std"), "seconds": result["seconds"],
            "steps_per_second": steps / max(result["seconds"] - in_learn, 1e-9)}


# -- the sweep ----------------------------------------------------------------------------------------

def check_config(config: Config) -> None:
    """Every setting checked before any run (``ValueError`` naming it)."""
    from dg_envs.algos.weighting import BOX_GATES

    check_tasks(config.tasks, "tasks")
    check_methods(config.methods, "methods")
    if not any(parse_method(m)[0] == "DGPPO" for m in config.methods):
        raise ValueError(f"methods must hold at least one DGPPO variant (the candidates), got {list(config.methods)}")
    check_tasks(config.long_tasks, "long_tasks", allow_empty=True)
    check_methods(config.long_methods, "long_methods")
    if config.long_box_gate is not None:
        check_choice(config.long_box_gate, "long_box_gate", BOX_GATES)
    for field in ("timesteps", "long_timesteps", "std_every", "eval_points", "eval_episodes"):
        check_int(getattr(config, field), field, low=1)


def ablation_jobs(config: Config) -> list[dict[str, Any]]:
    """The ablation's runs: every task x method x seed."""
    return [{"sweep": "ablation", "task": t, "method": m, "seed": s, "settings": run_settings(t, m, config.timesteps)}
            for t in config.tasks for m in config.methods for s in config.seeds]


def long_jobs(config: Config, chosen: str | None) -> list[dict[str, Any]]:
    """The long runs on every long task: ``long_methods`` and DGPPO with the ``chosen`` box_gate (None: not yet known)."""
    labels = list(config.long_methods)
    if chosen is not None and method_label("DGPPO", chosen) not in labels:
        labels.append(method_label("DGPPO", chosen))
    return [{"sweep": "long", "task": t, "method": m, "seed": s, "settings": run_settings(t, m, config.long_timesteps)}
            for t in config.long_tasks for m in labels for s in config.seeds]


def run_job(job: dict, config: Config, tensorboard_log: str | None = None) -> dict:
    """Train one job (clean); its record fields (:func:`train_box_run`)."""
    return train_box_run(job["task"], job["settings"], job["seed"], eval_points=config.eval_points,
                         eval_episodes=config.eval_episodes, std_every=config.std_every,
                         tensorboard_log=tensorboard_log)


def _recorded(config: Config, jobs: list[dict], out_dir: Path) -> list[dict] | None:
    """The records of ``jobs`` already in ``out_dir``'s file, if every one is there; else None."""
    path = Path(out_dir) / f"{NAME}.jsonl"
    if not path.exists():
        return None
    shared = shared_settings(config, GRID_FIELDS)
    by_key = {r.get("key"): r for r in load_records(path)}
    keys = [run_key(job, shared) for job in jobs]
    return [by_key[k] for k in keys] if all(k in by_key for k in keys) else None


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """The ablation, then the long runs, ``config.jobs`` runs at a time, resumed from ``out_dir``'s records.

    With ``long_box_gate=None`` the long runs' variant is :func:`choose_default` of the complete
    ablation: if the records already hold it, one sweep runs everything missing; otherwise the
    ablation (and the long PPO/DGPPO runs) first, then the chosen variant's long runs.
    """
    check_config(config)
    work = partial(run_job, config=config, tensorboard_log=tensorboard_log)
    ablation = ablation_jobs(config)
    chosen = config.long_box_gate
    if chosen is None and config.long_tasks:
        done = _recorded(config, ablation, Path(out_dir))
        chosen = choose_default(done).box_gate if done is not None else None
    jobs = ablation + long_jobs(config, chosen)
    records = run_sweep(NAME, config, jobs, work, out_dir, GRID_FIELDS, progress=progress)
    if chosen is None and config.long_tasks:
        chosen = choose_default(records[:len(ablation)]).box_gate
        more = long_jobs(config, chosen)
        if len(more) > len(jobs) - len(ablation):  # the variant is not one of long_methods: its runs now
            records = run_sweep(NAME, config, ablation + more, work, out_dir, GRID_FIELDS, progress=progress)
    return records


# -- the rule and the page ----------------------------------------------------------------------------

class Choice(NamedTuple):
    """What :func:`choose_default` decided and from what."""

    box_gate: str
    """The ``box_gate`` the sweep supports as the default."""
    label: str
    """Its method label."""
    aggregate: dict[str, float]
    """Method label -> mean over the counted tasks of its normalised return (every method of the records)."""
    widening: dict[str, float]
    """Method label -> geometric mean over the counted tasks of its final std / PPO's (or of its final std)."""
    tasks: tuple[str, ...]
    """The tasks counted (every candidate has runs there)."""
    reason: str
    """The decision in one sentence."""


def _mean(records: list[dict], key: str, **where) -> float:
    return float(np.mean([r[key] for r in records if all(r.get(k) == v for k, v in where.items())]))


def _final_std(record: dict) -> float:
    """A run's final action std, mean over dimensions."""
    return float(np.mean(record["final_std"])) if record.get("final_std") else float(record["std_curve"][-1][1])


def normalised_returns(means: dict[str, float]) -> dict[str, float]:
    """Min-max normalisation of one task's mean returns over methods: worst 0, best 1 (all 1 if they are equal).

    >>> normalised_returns({"PPO": 100.0, "DGPPO": 300.0, "DGPPO:clipped": 200.0})
    {'PPO': 0.0, 'DGPPO': 1.0, 'DGPPO:clipped': 0.5}
    """
    low, high = min(means.values()), max(means.values())
    return {m: (v - low) / (high - low) if high > low else 1.0 for m, v in means.items()}


def choose_default(records: list[dict]) -> Choice:
    """The ``box_gate`` the ablation supports as DGPPO's default, by the rule in :data:`RULE`.

    ``records``: ablation records (``task``, ``method``, ``return``, ``final_std`` or ``std_curve``);
    others are ignored. ``ValueError`` if no DGPPO variant has runs on a common task.

    >>> def run(task, method, ret, std):
    ...     return {"sweep": "ablation", "task": task, "method": method, "return": ret, "final_std": [std]}
    >>> records = [run("A", "PPO", 0.0, 1.0), run("A", "DGPPO", 100.0, 2.0), run("A", "DGPPO:mean_only", 98.0, 1.1)]
    >>> choose_default(records).box_gate   # 1.0 and 0.98 tie (within 0.05): the one that widens less
    'mean_only'
    """
    from dg_envs.algos.weighting import BOX_GATES

    records = [r for r in records if r.get("sweep", "ablation") == "ablation"]
    methods = list(dict.fromkeys(r["method"] for r in records))
    candidates = [m for m in methods if parse_method(m)[0] == "DGPPO"]
    tasks = tuple(t for t in dict.fromkeys(r["task"] for r in records)
                  if all(any(r["task"] == t and r["method"] == m for r in records) for m in candidates))
    if not candidates or not tasks:
        raise ValueError("choose_default needs ablation records of at least one DGPPO variant on a common task")
    scores: dict[str, list[float]] = {m: [] for m in methods}
    ratios: dict[str, list[float]] = {m: [] for m in methods}
    for t in tasks:
        ran = [m for m in methods if any(r["task"] == t and r["method"] == m for r in records)]
        norm = normalised_returns({m: _mean(records, "return", task=t, method=m) for m in ran})
        stds = {m: float(np.mean([_final_std(r) for r in records if r["task"] == t and r["method"] == m])) for m in ran}
        for m in ran:
            scores[m].append(norm[m])
            ratios[m].append(stds[m] / stds["PPO"] if "PPO" in stds else stds[m])
    aggregate = {m: float(np.mean(v)) for m, v in scores.items() if v}
    widening = {m: float(math.exp(np.mean(np.log(v)))) for m, v in ratios.items() if v}
    best = max(aggregate[m] for m in candidates)
    tied = [m for m in candidates if aggregate[m] >= best - TIE_TOLERANCE]
    order = {g: i for i, g in enumerate(BOX_GATES)}
    winner = min(tied, key=lambda m: (widening[m], order[parse_method(m)[1]]))
    others = [m for m in tied if m != winner]
    if not others:
        why = f"no other variant within {TIE_TOLERANCE}"
    elif all(widening[m] > widening[winner] for m in others):
        why = (f"tied within {TIE_TOLERANCE} with {', '.join(f'`{m}`' for m in others)}, it widens least "
               f"({widening[winner]:.3g} x PPO's std)")
    else:
        why = (f"tied within {TIE_TOLERANCE} with {', '.join(f'`{m}`' for m in others)}, it widens least "
               f"({widening[winner]:.3g} x PPO's std) or as little and comes first in `BOX_GATES`")
    reason = (f"`{winner}` has aggregate normalised return {aggregate[winner]:.3f} (best {best:.3f}); {why} "
              f"(over {len(tasks)} task{'s' if len(tasks) > 1 else ''})")
    return Choice(parse_method(winner)[1], winner, aggregate, widening, tasks, reason)


def _cells(records: list[dict], task: str, method: str) -> tuple[str, str]:
    rows = [r for r in records if r["task"] == task and r["method"] == method]
    if not rows:
        return "", ""
    stds = [_final_std(r) for r in rows]
    return format_mean_spread([r["return"] for r in rows], ".4g"), f"{np.mean(stds):.3g}"


def _budget(records: list[dict], task: str) -> str:
    return f"{next(r['timesteps'] for r in records if r['task'] == task):,}"


def _per_seed_choices(ablation: list[dict]) -> str:
    """The rule applied to each seed alone, for the seeds that ran every (task, method) of the ablation.

    >>> def run(seed, method, ret):
    ...     return {"sweep": "ablation", "task": "A", "method": method, "seed": seed, "return": ret, "final_std": [1.0]}
    >>> _per_seed_choices([run(0, "PPO", 0.0), run(0, "DGPPO", 1.0), run(1, "PPO", 0.0)])
    ' Each seed alone (those with every run): seed 0 `sample`.'
    """
    points = {(r["task"], r["method"]) for r in ablation}
    choices = []
    for seed in sorted({r["seed"] for r in ablation}):
        runs = [r for r in ablation if r["seed"] == seed]
        if {(r["task"], r["method"]) for r in runs} == points:
            choices.append(f"seed {seed} `{choose_default(runs).box_gate}`")
    return f" Each seed alone (those with every run): {', '.join(choices)}." if choices else ""


def analyse(records: list[dict], out_dir: Path) -> str:
    """The ablation table and the rule's choice, the long runs' table, and the std-over-training figure."""
    ablation = [r for r in records if r["sweep"] == "ablation"]
    long = [r for r in records if r["sweep"] == "long"]
    parts = []
    if ablation:
        tasks = list(dict.fromkeys(r["task"] for r in ablation))
        methods = list(dict.fromkeys(r["method"] for r in ablation))
        choice = choose_default(ablation)
        header = ["method"] + [h for t in tasks for h in (f"{t} ({_budget(ablation, t)}) return", "final std")]
        header += ["aggregate normalised return", "widening (std / PPO's)"]
        rows = [[m] + [c for t in tasks for c in _cells(ablation, t, m)]
                + [f"{choice.aggregate[m]:.3f}" if m in choice.aggregate else "",
                   f"{choice.widening[m]:.3g}" if m in choice.widening else ""] for m in methods]
        seeds = len({r["seed"] for r in ablation})
        parts.append(
            f"## Ablation: which gradient the gate multiplies\n\nClean; greedy return at the end (mean ± std over "
            f"{seeds} seed{'s' if seeds > 1 else ''}) and the final action std (mean over dimensions and seeds; "
            f"every run starts at std 1). {LABEL_NOTE}\n\n{markdown_table(header, rows)}\n\n"
            f"**The sweep supports `box_gate=\"{choice.box_gate}\"` as DGPPO's default**: {choice.reason}."
            f"{_per_seed_choices(ablation)}\n\n{RULE}")
    if long:
        ltasks = list(dict.fromkeys(r["task"] for r in long))
        lmethods = list(dict.fromkeys(r["method"] for r in long))
        header = ["method"] + [h for t in ltasks for h in (f"{t} ({_budget(long, t)}) return", "final std")]
        parts.append("## Long runs: PPO, DGPPO and the chosen variant\n\n" + markdown_table(
            header, [[m] + [c for t in ltasks for c in _cells(long, t, m)] for m in lmethods]))
    speed = [[m, f"{np.median([r['steps_per_second'] for r in records if r['method'] == m]):.0f}"]
             for m in dict.fromkeys(r["method"] for r in records)]
    parts.append("Throughput (median env steps/s over runs, learn's time less evaluations; one thread per run):\n\n"
                 + markdown_table(["method", "steps/s"], speed))
    table = "\n\n".join(parts)

    panels = [("ablation", t) for t in dict.fromkeys(r["task"] for r in ablation)]
    panels += [("long", t) for t in dict.fromkeys(r["task"] for r in long)]
    colors = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(r["method"] for r in records))}
    fig, axes = new_figure(ncols=max(len(panels), 1), width=3.6, height=3.2)
    for ax, (sweep, task) in zip(axes, panels):
        group = [r for r in records if r["sweep"] == sweep and r["task"] == task]
        for method in dict.fromkeys(r["method"] for r in group):
            runs = [r for r in group if r["method"] == method and r["std_curve"]]
            if runs:
                steps, std = mean_std_curve(runs)
                ax.plot(steps, std, color=colors[method], label=method,
                        linestyle="-" if parse_method(method)[1] == "sample" else "--")
        ax.set_title(f"{task.removeprefix('dg_envs/')} ({sweep}, {_budget(group, task)})", fontsize=8)
        ax.set_xlabel("timesteps", fontsize=8)
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("action std (mean over dimensions)")
    axes[0].legend(fontsize=6)
    return write_page(out_dir, NAME, table, fig)


def mean_std_curve(records: list[dict]) -> tuple[list[int], np.ndarray]:
    """Timesteps and the mean over runs of their std curves (runs of one setting share the points)."""
    n = min(len(r["std_curve"]) for r in records)
    steps = [t for t, _ in records[0]["std_curve"][:n]]
    return steps, np.mean([[s for _, s in r["std_curve"][:n]] for r in records], axis=0)
