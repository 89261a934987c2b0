"""The dg-envs command line."""

import pytest

from dg_envs.cli import build_parser, main


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
