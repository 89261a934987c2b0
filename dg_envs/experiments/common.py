"""What every experiment shares: seeds, mean-and-spread tables, figures, output folders.

An experiment (bsuite's split) is a module with

* ``NAME``: its name, as ``dg-envs experiment NAME`` takes it;
* ``Config``: a dataclass, each field documented; ``Config.quick()`` gives the minutes-long variant;
* ``run(config, progress=True, tensorboard_log=None, out_dir=".") -> list[dict]``: the sweep, one
  flat record per run. Every experiment's ``run`` has this one signature; ``out_dir`` is where a
  ``run`` saves artefacts besides the records (``mujoco``'s trained expert), and the others
  ignore it;
* ``analyse(records, out_dir) -> str``: writes ``<name>.md`` and ``<name>.png`` (with
  :func:`write_page`), returns the table.

A sweep of training runs goes through :func:`run_sweep`: every finished run's record is
appended to ``out_dir/<name>.jsonl`` at once, under a *run key* (:func:`run_key`: the grid
point and a hash of the settings that change its result), so a sweep that is stopped resumes
where it was, and ``config.jobs`` runs go side by side in spawned processes — or, inside
:func:`ray_sweeps` (``dg-envs experiment NAME --ray [ADDRESS]``), as Ray tasks on a local or
remote cluster (:class:`RayExecutor`), with the same records.

Algorithms are named as in :data:`dg_envs.algos.ALGORITHMS` and their classes come from
:func:`dg_envs.algos.get_algorithm`; an experiment keeps per-method settings (keyword
arguments, a record label) as data in its ``Config``, never a table of classes of its own.

:func:`dg_envs.experiments.run_experiment` ties them together: it checks the output folder
(:func:`prepare_out_dir`) before the sweep starts, and saves the raw records.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import dataclasses
import hashlib
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Where committed results live, relative to the repository root.
RESULTS_DIR = Path("docs") / "results"


def prepare_out_dir(out_dir: Path | str, name: str = "out_dir") -> Path:
    """Create the output folder ``out_dir`` if needed and check that files can be written in it.

    Called before a sweep starts, so that a bad folder fails in a second instead of losing the
    records of a finished sweep. A probe file is created in the folder and deleted again.
    ``ValueError`` naming ``name`` (the argument, or the command-line option) otherwise.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     prepare_out_dir(f.name)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: out_dir must be a writable folder; '...' is an existing file
    """
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} must be a writable folder; {str(path)!r} is an existing file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{name} must be a writable folder; cannot create {str(path)!r}: "
                         f"{error.strerror or error}") from error
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".dg_envs_probe_"):
            pass
    except OSError as error:
        raise ValueError(f"{name} must be a writable folder; cannot write in {str(path)!r}: "
                         f"{error.strerror or error}") from error
    return path


def mean_spread(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value).

    >>> mean_spread([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    arr = np.asarray(list(values), dtype=float)
    spread = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), spread


def format_mean_spread(values: Iterable[float], fmt: str = ".3g") -> str:
    """``"mean ± std (n=k)"`` for a table cell; ``"—"`` without values (a grid point not run).

    >>> format_mean_spread([0.1, 0.3]), format_mean_spread([])
    ('0.2 ± 0.141 (n=2)', '—')
    """
    values = list(values)
    if not values:
        return "—"
    mean, spread = mean_spread(values)
    return f"{mean:{fmt}} ± {spread:{fmt}} (n={len(values)})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table.

    >>> print(markdown_table(["a", "b"], [[1, 2]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def save_records(records: list[dict], out_dir: Path, name: str, keep_other_points: bool = False) -> Path:
    """Write the raw per-run records next to the table (JSON lines), so analyses can be redone.

    Replaces ``<name>.jsonl`` in one step (a temporary file renamed over it). With
    ``keep_other_points``, the file's records of grid points that ``records`` do not cover (run
    keys, :func:`run_key`) are kept after them: a sweep of part of a grid leaves the rest's.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.jsonl"
    if keep_other_points and path.exists():
        points = {_grid_point(r.get("key")) for r in records}
        records = list(records) + [r for r in load_records(path)
                                   if _grid_point(r.get("key")) not in points | {None}]
    temporary = path.with_name(f".{path.name}.tmp")  # replaced in one step: never half written
    with temporary.open("w") as f:
        for record in records:
            f.write(json.dumps(record, default=float) + "\n")
    os.replace(temporary, path)
    return path


def load_records(path: Path) -> list[dict]:
    """Read records written by :func:`save_records` (or appended by :func:`run_sweep`)."""
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


# -- resumable sweeps ---------------------------------------------------------------------------

#: Config fields that never change a run's result: which seeds exist, how many processes run.
EXECUTION_FIELDS = ("seeds", "jobs")


def settings_digest(value: Any) -> str:
    """A short, stable hash (10 hex digits of SHA-256) of a JSON-able value, keys sorted.

    >>> settings_digest({"b": 1, "a": (2, 3)}) == settings_digest({"a": [2, 3], "b": 1})
    True
    """
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def shared_settings(config: Any, grid_fields: Sequence[str] = ()) -> dict[str, Any]:
    """The config fields that change every run's result: all but ``grid_fields`` and :data:`EXECUTION_FIELDS`.

    ``grid_fields`` are those that change no run's result: they say *which* runs exist (the
    lists of methods, lags, settings), or only the analysis reads them (a threshold). What a
    grid point resolves to (a method's algorithm and keyword arguments, a friction's rates)
    goes into the job's ``"settings"`` instead (see :func:`run_key`).
    """
    names = {f.name for f in dataclasses.fields(config)}
    unknown = set(grid_fields) - names
    if unknown:
        raise ValueError(f"grid_fields {sorted(unknown)} are not fields of {type(config).__name__}")
    skip = set(grid_fields) | set(EXECUTION_FIELDS)
    return {name: value for name, value in dataclasses.asdict(config).items() if name not in skip}


def run_key(job: dict[str, Any], shared: dict[str, Any]) -> str:
    """The key of one run: its grid point and a hash of everything that changes its result.

    ``job`` is the grid point (``method``, ``lag``, ``seed``, ...), optionally with a
    ``"settings"`` entry (what the point resolves to: left out of the readable part, hashed);
    ``shared`` the config fields every run uses (:func:`shared_settings`). Two runs with one
    key give the same record (up to wall time), so a recorded key need not run again.

    >>> run_key({"method": "DG", "lag": 10, "seed": 0}, {"total_updates": 100})  # doctest: +ELLIPSIS
    'method=DG lag=10 seed=0 #...'
    """
    point = " ".join(f"{k}={json.dumps(v, default=str) if isinstance(v, (dict, list, tuple)) else v}"
                     for k, v in job.items() if k != "settings")
    return f"{point} #{settings_digest({'job': job, 'shared': shared})}"


def _grid_point(key: Any) -> str | None:
    """The readable part of a run key (the grid point, without the settings' hash)."""
    return key.rsplit(" #", 1)[0] if isinstance(key, str) else None


def _append(path: Path, record: dict) -> None:
    """Append one record as a JSON line, flushed to disk before returning."""
    with path.open("a") as f:
        f.write(json.dumps(record, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def use_one_thread() -> None:
    """One thread for torch and for NumPy's BLAS in this process (for good: the runs' setting).

    Small networks gain nothing from intra-op threads, and on a shared machine two threads per
    process make runs several times slower. The BLAS limit matters as much as torch's: the
    batched stale actors run their policy snapshot in NumPy, whose OpenBLAS otherwise spins a
    thread per core (measured here: a 100 x 784 x 100 product 1.2-12 ms with two threads on a
    busy 2-core machine, 0.6 ms with one). ``threadpoolctl`` (installed with scikit-learn, which
    mlxtend needs) sets the BLAS limit; without it only torch's is set.
    """
    import torch

    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn, itself mlxtend's
        return
    threadpool_limits(1)


def exit_with_parent(poll_seconds: float = 5.0) -> None:
    """End this process (``os._exit``) soon after its parent dies (a daemon thread polls the parent's pid).

    A pool worker outlives a sweep that is killed (``kill``, a closed terminal): its run goes on
    for up to an hour, holding a core, and its record is lost anyway, since only the sweep's
    process writes records. Where the parent dies the worker is re-parented, so its
    ``os.getppid()`` changes (POSIX; elsewhere the thread never fires).
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_worker() -> None:
    """A sweep's pool worker: one thread (:func:`use_one_thread`), and it ends with the sweep (:func:`exit_with_parent`)."""
    use_one_thread()
    exit_with_parent()


def _timed(work: Callable[[dict], dict], job: dict) -> dict:
    start = time.perf_counter()
    result = work(job)
    return {**result, "wall_seconds": time.perf_counter() - start}


class RayExecutor(cf.Executor):
    """A ``concurrent.futures`` executor whose calls run as Ray tasks (one CPU and one thread each).

    Connects to the cluster at ``address`` (``"HEAD:6379"``), or starts a local one (all CPUs)
    when ``address`` is None, unless Ray is already initialised in this process; ``shutdown``
    stops only a cluster connection this executor made. Each task runs ``fn(*args)`` after
    :func:`use_one_thread`, so ``fn`` and its arguments must be picklable (and importable on
    every node: ``dg_envs`` installed there). Ray's futures are ``concurrent.futures.Future``
    objects, so :func:`run_sweep` waits on them as on a process pool's. Needs the ``rllib``
    extra (or ``pip install ray``).
    """

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as error:
            raise ImportError('running a sweep on Ray needs Ray: pip install "dg-envs[rllib]"') from error
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self._task = ray.remote(num_cpus=1, max_retries=0)(_one_thread_call)

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        return self._task.remote(fn, *args, **kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


def _one_thread_call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    use_one_thread()
    return fn(*args, **kwargs)


#: Inside :func:`ray_sweeps`: the Ray address (a 1-tuple; ``(None,)``: a local cluster); else None.
_RAY_SWEEPS: contextvars.ContextVar[tuple[str | None] | None] = contextvars.ContextVar("ray_sweeps", default=None)


@contextlib.contextmanager
def ray_sweeps(address: str | None = None):
    """Within this block, :func:`run_sweep` runs the missing runs as Ray tasks (:class:`RayExecutor`).

    ``address`` None: a local cluster. ``config.jobs`` is then not used: Ray runs as many runs at
    once as the cluster has CPUs (one each). The records are those of a sweep run with ``jobs``.
    """
    token = _RAY_SWEEPS.set((address,))
    try:
        yield
    finally:
        _RAY_SWEEPS.reset(token)


def _executor(n_jobs: int) -> cf.Executor | None:
    """Where the runs go: None (one after another, in this process), a process pool, or Ray."""
    ray = _RAY_SWEEPS.get()
    if ray is not None:
        return RayExecutor(ray[0])
    if n_jobs <= 1:
        return None
    context = multiprocessing.get_context("spawn")  # no forked torch state
    return cf.ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_init_worker)


def run_sweep(
    name: str,
    config: Any,
    jobs: Sequence[dict[str, Any]],
    work: Callable[[dict[str, Any]], dict[str, Any]],
    out_dir: Path | str,
    grid_fields: Sequence[str] = (),
    progress: bool = True,
    needs: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
) -> list[dict]:
    """Run every job not yet recorded in ``out_dir/<name>.jsonl``; return all the jobs' records, in job order.

    :param config: the experiment's ``Config``; ``config.jobs`` (default 1) runs go side by
        side, each in a spawned process with one thread (:func:`use_one_thread`; ``work`` must
        then be picklable: a module-level function, or a ``functools.partial`` of one); inside
        :func:`ray_sweeps` every run is a Ray task instead (``work`` picklable too).
    :param jobs: the grid points (:func:`run_key`), JSON-able dicts.
    :param work: trains one job and returns its result fields (JSON-able).
    :param grid_fields: the config fields that change no run's result (:func:`shared_settings`).
    :param needs: a job that must be finished before this one starts (``mujoco``'s expert), or None.

    A record is ``{"key": ..., **job, **result, "wall_seconds": ...}``, appended (flushed) as
    soon as its run ends. Records already in the file under one of the jobs' keys are reused;
    records of one of the jobs' grid points under another key (other settings) are moved, not
    lost, to ``<name>.superseded.jsonl``; records of grid points not in ``jobs`` stay where they
    are, so a sweep of part of a grid (``--set settings=...``) keeps the rest's records. If a run fails, the runs already going are still waited for
    and recorded, and the first error is raised. One sweep per folder at a time: two
    processes resuming the same file would both run the missing runs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.jsonl"
    shared = shared_settings(config, grid_fields)
    keys = [run_key(job, shared) for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: two jobs share a run key; every grid point must be different")
    done: dict[str, dict] = {}
    if path.exists():
        old = load_records(path)
        wanted = set(keys)
        for record in old:
            if record.get("key") in wanted and record["key"] not in done:
                done[record["key"]] = record
        points = {_grid_point(k) for k in keys}
        others = [r for r in old if done.get(r.get("key")) is not r]
        superseded = [r for r in others if _grid_point(r.get("key")) in points]  # same point, other settings
        if superseded:
            with (out_dir / f"{name}.superseded.jsonl").open("a") as f:
                f.writelines(json.dumps(r, default=float) + "\n" for r in superseded)
            unselected = [r for r in others if _grid_point(r.get("key")) not in points]
            save_records([done[k] for k in keys if k in done] + unselected, out_dir, name)
    todo = [i for i, k in enumerate(keys) if k not in done]
    waits_for = {}  # job index -> key of the job it needs
    for i in todo:
        needed = needs(jobs[i]) if needs else None
        if needed is not None:
            if needed not in jobs:
                raise ValueError(f"{name}: job {keys[i]!r} needs a job that is not in the sweep")
            waits_for[i] = keys[list(jobs).index(needed)]

    def next_ready(queue: list[int]) -> list[int]:
        return [i for i in queue if i not in waits_for or waits_for[i] in done]

    def finish(i: int, result: dict) -> None:
        record = json.loads(json.dumps({"key": keys[i], **jobs[i], **result}, default=float))
        _append(path, record)
        done[keys[i]] = record

    from tqdm.auto import tqdm

    queue = list(todo)
    n_jobs = getattr(config, "jobs", 1)
    executor = _executor(getattr(config, "jobs", 1))
    with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=name, disable=not progress) as bar:
        if executor is None:
            while queue:
                i = next_ready(queue)[0]  # the needed job comes first in the queue
                queue.remove(i)
                finish(i, _timed(work, jobs[i]))
                bar.update()
        else:
            error: BaseException | None = None
            with executor as pool:
                running: dict[cf.Future, int] = {}
                while queue or running:
                    if error is None:
                        for i in next_ready(queue):
                            running[pool.submit(_timed, work, jobs[i])] = i
                            queue.remove(i)
                    if not running:
                        break
                    finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                    for future in finished:
                        i = running.pop(future)
                        try:
                            finish(i, future.result())
                            bar.update()
                        except Exception as exc:  # keep recording what still finishes, then raise
                            error = error or exc
            if error is not None:
                raise error
    return [done[k] for k in keys]


def write_page(out_dir: Path, name: str, table: str, fig) -> str:
    """Write ``name.md`` (the table under a title) and ``name.png`` (the figure); return the table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}.png", dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)  # pyplot keeps every figure open otherwise
    (out_dir / f"{name}.md").write_text(f"# {name}\n\n{table}\n")
    return table


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.8):
    """A matplotlib figure on the non-interactive Agg backend (no display needed)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]
