"""Resumable sweeps (dg_envs.experiments.common.run_sweep): records appended as runs finish, a
restarted sweep runs only what is missing, run keys change exactly with what changes a run,
and --jobs N runs the same runs in N processes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dg_envs.experiments import kondo_lengths, make_config, mnist_paper, run_experiment
from dg_envs.experiments.common import run_key, run_sweep, shared_settings

TINY = dict(methods=("PG", "DG"), lags=(0, 3), total_updates=4, batch_size=10, hidden=(8,), eval_every=0,
            source="offline")


REAL_RUN_JOB = mnist_paper.run_job


class Interrupted(Exception):
    pass


def _counting(monkeypatch, fail_after=None):
    """Count mnist_paper's training runs; raise after ``fail_after`` of them (an interrupted sweep)."""
    calls = []

    def run_job(job, config, tensorboard_log=None):
        if fail_after is not None and len(calls) == fail_after:
            raise Interrupted
        calls.append((job["method"], job["lag"], job["seed"]))
        return REAL_RUN_JOB(job, config, tensorboard_log)

    monkeypatch.setattr(mnist_paper, "run_job", run_job)
    return calls


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_interrupted_sweep_resumes_with_only_the_missing_runs(tmp_path, monkeypatch):
    path = tmp_path / "mnist-paper.jsonl"
    calls = _counting(monkeypatch, fail_after=3)
    with pytest.raises(Interrupted):
        run_experiment("mnist-paper", seeds=2, out_dir=tmp_path, progress=False, **TINY)
    assert len(calls) == 3 and len(_lines(path)) == 3  # each finished run was written at once
    calls = _counting(monkeypatch)
    run_experiment("mnist-paper", seeds=2, out_dir=tmp_path, progress=False, **TINY)
    assert len(calls) == 8 - 3  # 2 methods x 2 lags x 2 seeds, 3 already recorded
    records = _lines(path)
    assert [(r["method"], r["lag"], r["seed"]) for r in records] == [
        (m, lag, s) for lag in (0, 3) for m in ("PG", "DG") for s in (0, 1)]  # all of them, in grid order
    assert "| 3 |" in (tmp_path / "mnist-paper.md").read_text()  # the analysis saw every run
    # Run again: nothing left to run; one more seed: only its runs.
    calls = _counting(monkeypatch)
    run_experiment("mnist-paper", seeds=2, out_dir=tmp_path, progress=False, **TINY)
    assert calls == []
    run_experiment("mnist-paper", seeds=3, out_dir=tmp_path, progress=False, **TINY)
    assert sorted(calls) == sorted((m, lag, 2) for m in ("PG", "DG") for lag in (0, 3))
    assert not (tmp_path / "mnist-paper.superseded.jsonl").exists()


def test_a_changed_setting_reruns_and_keeps_the_old_records_aside(tmp_path, monkeypatch):
    run_experiment("mnist-paper", seeds=1, out_dir=tmp_path, progress=False, **TINY)
    old = _lines(tmp_path / "mnist-paper.jsonl")
    calls = _counting(monkeypatch)
    run_experiment("mnist-paper", seeds=1, out_dir=tmp_path, progress=False, **{**TINY, "learning_rate": 3e-3})
    assert len(calls) == 4
    assert _lines(tmp_path / "mnist-paper.superseded.jsonl") == old
    assert len(_lines(tmp_path / "mnist-paper.jsonl")) == 4
    # One method's settings changed: only that method's runs again.
    calls = _counting(monkeypatch)
    settings = {**make_config("mnist-paper").method_settings, "DG": {"algorithm": "DGPG", "eta": 0.5}}
    run_experiment("mnist-paper", seeds=1, out_dir=tmp_path, progress=False,
                   **{**TINY, "learning_rate": 3e-3, "method_settings": settings})
    assert sorted(calls) == [("DG", 0, 0), ("DG", 3, 0)]


def test_a_sweep_of_part_of_the_grid_keeps_the_other_points_records(tmp_path, monkeypatch):
    run_experiment("mnist-paper", seeds=1, out_dir=tmp_path, progress=False, **TINY)
    everything = _lines(tmp_path / "mnist-paper.jsonl")
    calls = _counting(monkeypatch)
    run_experiment("mnist-paper", seeds=1, out_dir=tmp_path, progress=False, **{**TINY, "methods": ("DG",)})
    assert calls == []
    assert not (tmp_path / "mnist-paper.superseded.jsonl").exists()
    assert sorted(r["key"] for r in _lines(tmp_path / "mnist-paper.jsonl")) == sorted(r["key"] for r in everything)
    # The part again under other settings: its points' records move aside, PG's stay.
    run_experiment("mnist-paper", seeds=1, out_dir=tmp_path, progress=False,
                   **{**TINY, "methods": ("DG",), "learning_rate": 3e-3})
    assert len(calls) == 2
    assert {r["method"] for r in _lines(tmp_path / "mnist-paper.superseded.jsonl")} == {"DG"}
    kept = _lines(tmp_path / "mnist-paper.jsonl")
    assert [r for r in kept if r["method"] == "PG"] == [r for r in everything if r["method"] == "PG"]
    calls.clear()
    run_experiment("mnist-paper", seeds=1, out_dir=tmp_path, progress=False, **TINY)
    assert sorted(calls) == [("DG", 0, 0), ("DG", 3, 0)]  # PG's runs were still there


def test_run_keys_hash_what_changes_a_result_and_nothing_else():
    config = make_config("kondo-lengths")
    grid = kondo_lengths.grid(config)
    key = run_key(grid[0], shared_settings(config, kondo_lengths.GRID_FIELDS))
    assert key.startswith("length=4 method=Kondo 3% seed=0 #")

    def key_with(**changes):
        changed = make_config("kondo-lengths", **changes)
        return run_key(kondo_lengths.grid(changed)[0], shared_settings(changed, kondo_lengths.GRID_FIELDS))

    # The analysis' threshold, more seeds, more lengths, more processes: the same run.
    assert key_with(solved_below=0.01) == key_with(seeds=5) == key_with(lengths=(4, 30)) == key_with(jobs=4) == key
    # The budget, the learning rate, the method's own settings: another run.
    settings = {**config.method_settings, "Kondo 3%": {"algorithm": "KondoPG", "keep_fraction": 0.1}}
    assert len({key, key_with(total_updates=10), key_with(learning_rate=1e-3), key_with(method_settings=settings)}) == 4
    with pytest.raises(ValueError, match="grid_fields .'nope'. are not fields"):
        shared_settings(config, ("nope",))


def test_duplicate_jobs_are_refused(tmp_path):
    config = make_config("mnist-paper")
    job = {"method": "DG", "lag": 0, "seed": 0}
    with pytest.raises(ValueError, match="two jobs share a run key"):
        run_sweep("x", config, [job, dict(job)], lambda j: {}, tmp_path, progress=False)


def test_needs_orders_dependent_jobs(tmp_path):
    config = make_config("mnist-paper")
    jobs = [{"name": "discovery"}, {"name": "expert"}]
    order = []
    records = run_sweep("x", config, jobs, lambda j: order.append(j["name"]) or {"ok": 1}, tmp_path, progress=False,
                        needs=lambda j: jobs[1] if j["name"] == "discovery" else None)
    assert order == ["expert", "discovery"] and [r["name"] for r in records] == ["discovery", "expert"]


def test_jobs_run_the_same_runs_in_processes(tmp_path):
    """--jobs 2: the same records (training is seeded and single-threaded) from spawned processes."""
    serial = run_experiment("mnist-paper", seeds=2, out_dir=tmp_path / "serial", progress=False, **TINY)
    parallel = run_experiment("mnist-paper", seeds=2, out_dir=tmp_path / "parallel", progress=False, jobs=2, **TINY)
    assert serial == parallel
    strip = lambda r: {k: v for k, v in r.items() if "seconds" not in k}  # noqa: E731
    assert ([strip(r) for r in _lines(tmp_path / "serial" / "mnist-paper.jsonl")]
            == [strip(r) for r in _lines(tmp_path / "parallel" / "mnist-paper.jsonl")])


@pytest.mark.skipif(not hasattr(os, "getppid") or sys.platform == "win32", reason="re-parenting is POSIX")
def test_a_killed_sweeps_workers_end_with_it(tmp_path):
    """Killing a sweep (its parent process) used to leave its pool workers running their runs for up to an hour."""
    script = tmp_path / "sweep.py"
    script.write_text(
        "import os, time\n"
        "from dg_envs.experiments.common import _executor\n"
        "if __name__ == '__main__':  # (spawned workers import this file)\n"
        "    pool = _executor(2)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 600)\n"
        "    time.sleep(600)\n"
    )
    sweep = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(sweep.stdout.readline())
    os.kill(worker, 0)  # alive
    sweep.kill()
    sweep.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.kill(worker, signal.SIGKILL)
    pytest.fail(f"the pool worker {worker} outlived its killed sweep by 30 s")
