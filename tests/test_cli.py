"""The dg-envs command line."""

import argparse
import importlib.util
import subprocess
import sys
import time

import pytest

from dg_envs.cli import build_parser, main, positive_int


def test_experiment_command_writes_results(tmp_path, capsys):
    assert main(["experiment", "bandit-geometry", "--quick", "--seeds", "1", "--out", str(tmp_path)]) == 0
    assert "| bandit |" in capsys.readouterr().out
    assert (tmp_path / "bandit-geometry.md").exists() and (tmp_path / "bandit-geometry.png").exists()


def test_unknown_experiment_is_refused_with_the_accepted_names(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "no-such-thing"])
    assert "mnist-staleness" in capsys.readouterr().err


def test_demo_defaults_are_small():
    args = build_parser().parse_args(["demo"])
    assert args.seeds == 1 and args.updates <= 1000 and args.out == "dg_envs_demo"


def _cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``dg-envs ARGS`` as a user does, in a subprocess; return the result and its seconds."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dg_envs.cli", *args], capture_output=True, text=True,
                            timeout=60, check=False)
    return result, time.perf_counter() - start


def _error_line(stderr: str) -> str:
    """argparse's one-line message (after the usage lines)."""
    (line,) = [line for line in stderr.splitlines() if ": error: " in line]
    return line


@pytest.mark.parametrize("command", [["experiment", "bandit-geometry", "--quick"], ["demo"]])
@pytest.mark.parametrize("where", ["file", "file/below"])
def test_cli_rejects_bad_out_dir(tmp_path, command, where):
    """An existing file (or a folder that cannot be made) as --out: a usage error in seconds,
    before any training, instead of a traceback after the whole sweep."""
    (tmp_path / "file").write_text("not a folder")
    result, seconds = _cli(*command, "--out", str(tmp_path / where))
    assert result.returncode == 2, result.stderr
    assert "--out" in _error_line(result.stderr) and "Traceback" not in result.stderr
    assert seconds < 5.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing trained, nothing written


@pytest.mark.parametrize("args, option", [
    (["demo", "--updates", "-5"], "--updates"),
    (["demo", "--updates", "0"], "--updates"),
    (["demo", "--lag", "-1"], "--lag"),
    (["demo", "--seeds", "0"], "--seeds"),
    (["demo", "--seeds", "two"], "--seeds"),
    (["experiment", "bandit-geometry", "--seeds", "0"], "--seeds"),
    (["experiment", "bandit-geometry", "--seeds", "-1"], "--seeds"),
    (["experiment", "mujoco", "--jobs", "0"], "--jobs"),
    (["experiment", "mujoco", "--jobs", "1.5"], "--jobs"),
])
def test_cli_rejects_invalid_counts(tmp_path, args, option):
    result, seconds = _cli(*args, "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    line = _error_line(result.stderr)
    assert f"argument {option}:" in line and "must be an integer >= " in line and "Traceback" not in result.stderr
    assert seconds < 5.0
    assert not (tmp_path / "out").exists()  # refused at parse time, before the output folder


def test_cli_rejects_invalid_jobs_for_an_experiment_without_them(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "bandit-geometry", "--jobs", "2", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "argument --jobs: bandit-geometry has no setting ['jobs']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["mnist-staleness", "--ray", "--jobs", "2"], "argument --ray: not allowed with --jobs"),
    (["bandit-geometry", "--ray"], "argument --ray: bandit-geometry does not run independent runs side by side"),
    (["distributed", "--ray", "HEAD:6379"], "argument --ray: distributed does not run independent runs"),
])
def test_cli_rejects_ray_where_it_cannot_run_the_sweep(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", *args, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ray_option_takes_an_optional_address():
    parse = build_parser().parse_args
    assert parse(["experiment", "mnist-staleness"]).ray is None
    assert parse(["experiment", "mnist-staleness", "--ray"]).ray == ""  # a local cluster
    assert parse(["experiment", "mnist-staleness", "--ray", "HEAD:6379"]).ray == "HEAD:6379"


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed")
def test_ray_sweep_without_ray_names_the_extra(tmp_path):
    with pytest.raises(ImportError, match=r"dg-envs\[rllib\]"):
        main(["experiment", "mnist-staleness", "--quick", "--seeds", "1", "--ray", "--out", str(tmp_path)])
    assert not (tmp_path / "mnist-staleness.jsonl").exists()


def test_cli_rejects_bad_tensorboard_dir(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "bandit-geometry", "--out", str(tmp_path), "--tensorboard", str(tmp_path / "file")])
    assert exit_info.value.code == 2 and "argument --tensorboard must be a writable folder" in capsys.readouterr().err


def test_count_type_accepts_only_positive_integers():
    assert positive_int("1") == 1 and positive_int("12") == 12
    for text in ("0", "-1", "1e3", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be an integer >= 1"):
            positive_int(text)


def test_experiment_set_changes_settings_and_refuses_unknown_names(tmp_path, capsys):
    from dg_envs.cli import setting

    assert setting("lags=(0, 1000)") == ("lags", (0, 1000)) and setting("source=offline") == ("source", "offline")
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "kondo-lengths", "--set", "no_such=1", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "argument --set: kondo-lengths has no setting ['no_such']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "kondo-lengths", "--set", "1000"])
    assert "argument --set: must be NAME=VALUE" in capsys.readouterr().err


def test_paper_experiment_quick_from_the_command_line(tmp_path, capsys):
    """`dg-envs experiment kondo-lengths --quick` writes its page with the claims table; run again
    with the same settings, it trains nothing (every run is recorded) and writes the same table."""
    args = ["experiment", "kondo-lengths", "--quick", "--seeds", "1", "--out", str(tmp_path), "--set", "lengths=(2,)",
            "--set", "total_updates=10"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "## The papers' claims" in first and (tmp_path / "kondo-lengths.png").exists()
    lines = (tmp_path / "kondo-lengths.jsonl").read_text()
    start = time.perf_counter()
    assert main(args) == 0
    assert time.perf_counter() - start < 5.0  # nothing trained
    assert capsys.readouterr().out == first and (tmp_path / "kondo-lengths.jsonl").read_text() == lines


def test_report_writes_the_page_from_every_record_of_several_partial_sweeps(tmp_path, capsys):
    """Two sweeps over parts of a grid (other methods, other lengths) in one folder; --report analyses all
    their records, which neither sweep's own page covers, and trains nothing."""
    base = ["experiment", "kondo-lengths", "--quick", "--seeds", "1", "--out", str(tmp_path), "--set", "total_updates=5"]
    assert main(base + ["--set", "lengths=(2,)", "--set", "methods=('DG',)"]) == 0
    assert main(base + ["--set", "lengths=(3,)", "--set", "methods=('PPO',)"]) == 0
    capsys.readouterr()
    lines = (tmp_path / "kondo-lengths.jsonl").read_text()
    start = time.perf_counter()
    assert main(["experiment", "kondo-lengths", "--report", "--out", str(tmp_path)]) == 0
    assert time.perf_counter() - start < 5.0  # nothing trained
    out = capsys.readouterr().out
    assert "| DG |" in out and "| PPO |" in out  # both sweeps' methods in one table
    page = (tmp_path / "kondo-lengths.md").read_text()
    assert "Produced by `dg-envs experiment kondo-lengths --report` from the 2 records" in page
    assert (tmp_path / "kondo-lengths.jsonl").read_text() == lines


def test_report_refuses_run_options_and_an_empty_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "kondo-lengths", "--report", "--jobs", "2", "--out", str(tmp_path)])
    assert "argument --report: not allowed with --jobs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "kondo-lengths", "--report", "--out", str(tmp_path)])
    assert "holds no records of kondo-lengths: run the experiment first" in capsys.readouterr().err
    from dg_envs.experiments import report_experiment

    with pytest.raises(ValueError, match="holds no records of kondo-lengths"):
        report_experiment("kondo-lengths", tmp_path)
