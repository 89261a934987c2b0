"""The papers' experiments, each a config dataclass + a sweep (``run``) + an ``analyse`` step.

``dg-envs experiment NAME`` runs one; :func:`run_experiment` is the same from Python.
Each writes ``NAME.md`` (table, mean ± std over seeds), ``NAME.png``, ``NAME.jsonl`` (raw
records) and ``NAME.config.json`` (the settings) into the output folder, ``docs/results/`` by
default. The experiment contract (``Config``, ``run``, ``analyse``) is described in
:mod:`dg_envs.experiments.common`.

Sweeps resume: every training run's record is appended to ``NAME.jsonl`` as soon as it
finishes, and the same command run again (same settings) skips the runs already recorded,
then analyses all of them (:func:`dg_envs.experiments.common.run_sweep`). ``jobs=N``
(``--jobs N``) runs N training runs side by side; ``ray=True`` (``--ray``) runs them as Ray tasks
on a local cluster, ``ray="HEAD:6379"`` (``--ray HEAD:6379``) on a running one, with the same
records (Ray: the ``rllib`` extra).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import time
from pathlib import Path

from dg_envs.experiments.common import (
    EXECUTION_FIELDS, RESULTS_DIR, prepare_out_dir, ray_sweeps, save_records, use_one_thread,
)
from dg_envs.validation import check_int

#: Experiment name -> module (imported on use: each pulls in what it needs).
EXPERIMENTS = {
    "mnist-staleness": "dg_envs.experiments.mnist_staleness",
    "token-reversal-frictions": "dg_envs.experiments.token_reversal_frictions",
    "kondo-frontier": "dg_envs.experiments.kondo_frontier",
    "bandit-geometry": "dg_envs.experiments.bandit_geometry",
    "mujoco": "dg_envs.experiments.mujoco",
    "mnist-paper": "dg_envs.experiments.mnist_paper",
    "token-reversal-paper": "dg_envs.experiments.token_reversal_paper",
    "kondo-lengths": "dg_envs.experiments.kondo_lengths",
    "widening": "dg_envs.experiments.widening",
    "dmc-suite": "dg_envs.experiments.dmc_suite",
    "distributed": "dg_envs.experiments.distributed",
}


def get_experiment(name: str):
    """The module implementing experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {sorted(EXPERIMENTS)}, got {name!r}")
    return importlib.import_module(EXPERIMENTS[name])


def make_config(name: str, quick: bool = False, seeds: int | None = None, **overrides):
    """The experiment's ``Config`` (``quick`` variant if asked), with ``seeds`` = range(N)."""
    module = get_experiment(name)
    config = module.Config.quick() if quick else module.Config()
    unknown = set(overrides) - {f.name for f in dataclasses.fields(config)}
    if unknown:
        raise ValueError(f"{name} has no setting {sorted(unknown)}; its settings are "
                         f"{[f.name for f in dataclasses.fields(config)]}")
    if seeds is not None:
        overrides["seeds"] = tuple(range(check_int(seeds, "seeds", low=1)))
    return dataclasses.replace(config, **overrides) if overrides else config


def _union(old, new):
    """``old`` and ``new`` together: lists in order without repeats, dicts key by key (``new`` wins), else ``new``."""
    if isinstance(old, list) and isinstance(new, list):
        return old + [item for item in new if item not in old]
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **new}
    return new


def write_config(path: Path, config, grid_fields=()) -> None:
    """Write ``config`` as JSON to ``path``, the settings beside a sweep's records and page.

    A sweep over part of a grid (``--set methods=...``, ``--seeds``) adds its grid to the file's
    when every setting its runs share is the file's: the file then says what the page covers, not
    only what the last invocation ran (lists of methods, settings, seeds... joined in order,
    dicts key by key). A sweep with other shared settings replaces the file, as its runs replace
    the records.

    >>> import dataclasses, tempfile
    >>> @dataclasses.dataclass
    ... class C:
    ...     methods: tuple = ("DG",)
    ...     lr: float = 0.1
    ...     seeds: tuple = (0,)
    >>> path = Path(tempfile.mkdtemp()) / "x.config.json"
    >>> write_config(path, C(), ["methods"]); write_config(path, C(methods=("PG", "DG"), seeds=(0, 1)), ["methods"])
    >>> json.loads(path.read_text())
    {'methods': ['DG', 'PG'], 'lr': 0.1, 'seeds': [0, 1]}
    >>> write_config(path, C(methods=("PG",), lr=0.2), ["methods"])
    >>> json.loads(path.read_text())["methods"]
    ['PG']
    """
    new = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    varying = set(grid_fields) | set(EXECUTION_FIELDS)
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        if (isinstance(old, dict) and old.keys() == new.keys()
                and all(old[k] == new[k] for k in new if k not in varying)):
            new = {k: _union(old[k], v) if k in varying else v for k, v in new.items()}
    path.write_text(json.dumps(new, indent=1))


def report_experiment(name: str, out_dir: Path | str = RESULTS_DIR) -> str:
    """Write experiment ``name``'s page (``NAME.md``, ``NAME.png``) from *every* record in ``out_dir/NAME.jsonl``.

    Runs nothing (``dg-envs experiment NAME --report``): the page of a sweep still going in
    another process, or of runs made by several sweeps over parts of a grid (``--set
    methods=...`` in one, ``--set settings=...`` in another) that no single grid covers. Records
    of one grid point under several settings (their run keys differ) are all analysed: keep one
    setting per folder. ``ValueError`` if the folder holds no records of ``name``.
    """
    from dg_envs.experiments.common import load_records

    module = get_experiment(name)
    path = Path(out_dir) / f"{name}.jsonl"
    records = load_records(path) if path.exists() else []
    if not records:
        raise ValueError(f"out_dir: {path} holds no records of {name}: run the experiment first")
    table = module.analyse(records, Path(out_dir))
    run_seconds = sum(r.get("wall_seconds", 0.0) for r in records)
    with (Path(out_dir) / f"{name}.md").open("a") as f:
        f.write(f"\nProduced by `dg-envs experiment {name} --report` from the {len(records)} records in "
                f"`{path.name}` (the runs' wall times add up to {run_seconds:.0f} s; their settings: in each record "
                f"and in `{name}.config.json`).\n")
    return table


def run_experiment(name: str, quick: bool = False, seeds: int | None = None, out_dir: Path | str = RESULTS_DIR,
                   progress: bool = True, tensorboard_log: str | None = None, ray: bool | str = False,
                   **overrides) -> str:
    """Run experiment ``name``, write its table/figure/records into ``out_dir``, return the table.

    ``tensorboard_log``: a folder for SB3's TensorBoard logs of every training run (off by default).
    ``ray``: run the sweep's runs as Ray tasks (:func:`~dg_envs.experiments.common.ray_sweeps`):
    ``True`` on a local cluster, a string on the cluster at that address; ``False``: processes
    (``jobs``).
    The settings and ``out_dir`` are checked before the sweep starts (``ValueError`` naming
    them): ``out_dir`` is created if needed and must be a folder this process can write in.
    """
    if not isinstance(ray, (bool, str)):
        raise ValueError(f"ray must be True, False or a cluster address, got {ray!r}")
    module = get_experiment(name)
    config = make_config(name, quick=quick, seeds=seeds, **overrides)
    if ray is not False and "jobs" not in {f.name for f in dataclasses.fields(config)}:
        raise ValueError(f"ray: {name} does not run independent runs side by side (it has no jobs setting)")
    out_dir = prepare_out_dir(out_dir)

    # One thread each (torch and BLAS), so that experiments can run side by side.
    use_one_thread()
    start = time.perf_counter()
    write_config(out_dir / f"{name}.config.json", config, getattr(module, "GRID_FIELDS", ()))
    on_ray = contextlib.nullcontext() if ray is False else ray_sweeps(None if ray is True else ray)
    with on_ray:
        records = module.run(config, progress=progress, tensorboard_log=tensorboard_log, out_dir=out_dir)
    # The sweep's records in grid order (a resumed sweep's included), then other grid points' records.
    save_records(records, out_dir, name, keep_other_points=True)
    table = module.analyse(records, out_dir)
    elapsed = time.perf_counter() - start
    mode = "quick" if quick else "full"
    with (out_dir / f"{name}.md").open("a") as f:
        changed = f", settings changed: {overrides}" if overrides else ""
        run_seconds = sum(r.get("wall_seconds", 0.0) for r in records)
        timing = f"; the runs' wall times add up to {run_seconds:.0f} s" if run_seconds else ""
        f.write(f"\nProduced by `dg-envs experiment {name}{' --quick' if quick else ''}` "
                f"({mode} mode, seeds {list(config.seeds)}{changed}) in {elapsed:.0f} s{timing}.\n")
    return table
