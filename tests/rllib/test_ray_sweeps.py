"""``dg-envs experiment NAME --ray``: a sweep's runs as Ray tasks give the records ``--jobs 1`` gives."""

import json

import pytest

pytest.importorskip("ray")

from dg_envs.cli import main  # noqa: E402

#: Four short MNIST runs (DG and PG at lags 0 and 10, 30 updates each): seconds apiece.
ARGS = ["experiment", "mnist-staleness", "--quick", "--seeds", "1", "--set", "methods=('DG', 'PG')",
        "--set", "lags=(0, 10)", "--set", "total_updates=30", "--set", "eval_every=10"]
#: What differs between two runs of one job: their timings.
TIMINGS = {"wall_seconds", "seconds", "train_seconds"}


def _records(folder):
    lines = (folder / "mnist-staleness.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines]


def test_ray_tasks_give_the_records_of_jobs_1(local_ray, tmp_path):
    assert main([*ARGS, "--jobs", "1", "--out", str(tmp_path / "jobs")]) == 0
    assert main([*ARGS, "--ray", "--out", str(tmp_path / "ray")]) == 0  # the session's local cluster (2 CPUs)
    by_jobs, by_ray = _records(tmp_path / "jobs"), _records(tmp_path / "ray")
    assert [(r["method"], r["lag"]) for r in by_ray] == [("DG", 0), ("PG", 0), ("DG", 10), ("PG", 10)]
    assert by_ray == by_jobs  # same keys, curves and test errors, bit for bit
    assert local_ray.is_initialized()  # the executor leaves a cluster it did not start running
