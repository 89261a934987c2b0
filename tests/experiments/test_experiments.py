"""Every experiment runs end to end in its quick mode (one seed) and writes its table and figure;
the exact tabular analysis is also checked against analytic facts."""

import inspect
import json
import os

import numpy as np
import pytest

from dg_envs.experiments import EXPERIMENTS, make_config, run_experiment
from dg_envs.experiments import bandit_geometry as bg


def _check_quick_outputs(name, table, out_dir) -> list[dict]:
    """The page, figure and records every quick run writes; returns the records."""
    assert (out_dir / f"{name}.png").stat().st_size > 10_000  # a real figure, not an empty canvas
    page = (out_dir / f"{name}.md").read_text()
    assert table in page and f"dg-envs experiment {name} --quick" in page
    records = [json.loads(line) for line in (out_dir / f"{name}.jsonl").read_text().splitlines()]
    assert records and all(r["seed"] == 0 for r in records)
    return records


# mujoco's quick run (the slowest) is checked once, with its own assertions, below; the
# paper-budget experiments' quick runs in test_paper.py.
PAPER_EXPERIMENTS = {"mnist-paper", "token-reversal-paper", "kondo-lengths"}
# distributed needs Ray RLlib (the rllib extra): its quick run is in tests/rllib/test_distributed.py.
RAY_EXPERIMENTS = {"distributed"}


@pytest.mark.parametrize("name", sorted(set(EXPERIMENTS) - {"mujoco"} - PAPER_EXPERIMENTS - RAY_EXPERIMENTS))
def test_quick_mode_writes_table_figure_and_records(name, tmp_path):
    table = run_experiment(name, quick=True, seeds=1, out_dir=tmp_path, progress=False)
    records = _check_quick_outputs(name, table, tmp_path)
    for key in ("test_error", "sequence_error", "error", "one_minus_cos_true"):
        values = [r[key] for r in records if key in r]
        assert all(0.0 <= v <= 2.0 for v in values)  # errors in [0, 1]; 1 - cos in [0, 2]


def test_mnist_staleness_quick_learns_on_policy(tmp_path):
    """On-policy (lag 0) DG after 300 updates of 100 images: far below the 0.9 error of chance."""
    run_experiment("mnist-staleness", quick=True, seeds=1, out_dir=tmp_path, progress=False, methods=("DG",), lags=(0,))
    (record,) = [json.loads(line) for line in (tmp_path / "mnist-staleness.jsonl").read_text().splitlines()]
    assert record["test_error"] < 0.3


def test_mujoco_quick_saves_an_expert_that_is_the_discovery_oracle(tmp_path):
    from dg_envs.experiments import mujoco
    from dg_envs.wrappers import PolicyOracle

    table = run_experiment("mujoco", quick=True, seeds=1, out_dir=tmp_path, progress=False)
    records = _check_quick_outputs("mujoco", table, tmp_path)
    first, then = mujoco.jobs(make_config("mujoco", quick=True, seeds=1))
    assert [r["sweep"] for r in records] == [j["sweep"] for j in first + then]
    assert {r["sweep"] for r in records} == {"expert", "main", "ablation", "discovery"}
    # InvertedPendulum pays +1 per step alive: any policy scores at least 1 per episode.
    assert all(1.0 <= r["return"] <= 1000.0 for r in records)
    assert all(r["timesteps"] == 2048 and len(r["curve"]) >= 2 for r in records)
    oracle = PolicyOracle.load(mujoco.expert_path(tmp_path, "InvertedPendulum-v5"))
    assert oracle(np.zeros(4, dtype=np.float32)).shape == (1,)


def test_make_config_seeds_and_validation():
    assert make_config("bandit-geometry", seeds=4).seeds == (0, 1, 2, 3)
    with pytest.raises(ValueError, match="no setting .'jobs'."):
        make_config("bandit-geometry", jobs=2)
    with pytest.raises(ValueError, match="seeds"):
        make_config("bandit-geometry", seeds=0)
    with pytest.raises(ValueError, match="experiment must be one of"):
        make_config("no-such-experiment")


def _no_training(*args, **kwargs):
    raise AssertionError("training started")


@pytest.mark.parametrize("where", ["file", "file/below"])
def test_run_experiment_rejects_bad_out_dir_before_running(tmp_path, monkeypatch, where):
    """A file where the output folder should be fails before the sweep, not after it."""
    from dg_envs.experiments import get_experiment

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setattr(get_experiment("bandit-geometry"), "run", _no_training)
    with pytest.raises(ValueError, match="out_dir must be a writable folder"):
        run_experiment("bandit-geometry", quick=True, out_dir=tmp_path / where, progress=False)


def test_prepare_out_dir_creates_and_leaves_no_probe(tmp_path):
    from dg_envs.experiments.common import prepare_out_dir

    assert prepare_out_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes in any folder")
def test_run_experiment_rejects_unwritable_out_dir(tmp_path, monkeypatch):
    from dg_envs.experiments import get_experiment

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setattr(get_experiment("bandit-geometry"), "run", _no_training)
    with pytest.raises(ValueError, match="out_dir must be a writable folder; cannot write"):
        run_experiment("bandit-geometry", quick=True, out_dir=locked, progress=False)


@pytest.mark.parametrize("seeds", [0, -1, 1.5, True])
def test_make_config_rejects_invalid_seeds(seeds):
    with pytest.raises(ValueError, match="seeds must be an integer >= 1"):
        make_config("bandit-geometry", seeds=seeds)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_run_has_the_one_signature(name):
    """run_experiment calls every run the same way (the contract in dg_envs.experiments.common)."""
    from dg_envs.experiments import get_experiment

    parameters = inspect.signature(get_experiment(name).run).parameters
    assert list(parameters) == ["config", "progress", "tensorboard_log", "out_dir"]
    assert [parameters[p].default for p in ("progress", "tensorboard_log")] == [True, None]


def test_experiments_take_their_classes_from_the_registry():
    from dg_envs.algos import ALGORITHMS, RelabelledPPO
    from dg_envs.experiments import kondo_frontier, mnist_staleness, training
    from dg_envs.experiments import token_reversal_frictions as trf

    assert not hasattr(training, "RelabelledPPO")  # one class, in dg_envs.algos
    # mnist-staleness keeps its record labels; "DG" is DGA2C.
    assert [mnist_staleness.algorithm(m) for m in mnist_staleness.Config().methods] == [
        ALGORITHMS["PG"], ALGORITHMS["IWPG"], ALGORITHMS["DGA2C"]]
    config = trf.Config()
    assert trf.algorithm(config, "PPO") == (RelabelledPPO, {})
    assert trf.algorithm(config, "KondoPPO") == (ALGORITHMS["KondoPPO"], {"keep_fraction": 0.3})
    spec = trf.run_spec(config, "KondoPPO", {}, 5, 2, seed=0)
    assert spec.algo_kwargs["keep_fraction"] == 0.3 and spec.algo_kwargs["n_epochs"] == 4
    assert "n_epochs" not in trf.run_spec(config, "PG", {}, 5, 2, seed=0).algo_kwargs
    kondo = kondo_frontier.Config()
    assert kondo_frontier.run_spec(kondo, "mnist", {"keep_fraction": 0.3}, 0).algo is ALGORITHMS["KondoA2C"]
    assert kondo_frontier.run_spec(kondo, "token-reversal", {"keep_fraction": 0.3}, 0).algo is ALGORITHMS["KondoPPO"]


@pytest.mark.parametrize("name, overrides", [
    ("mnist-staleness", {"methods": ("PG", "SAC")}),
    ("token-reversal-frictions", {"methods": ("PPO", "SAC")}),
    ("mujoco", {"methods": ("PPO", "SAC")}),
    ("mnist-paper", {"method_settings": {"PG": {"algorithm": "SAC"}}, "methods": ("PG",)}),
    ("token-reversal-paper", {"method_settings": {"DG": {"algorithm": "SAC"}}, "methods": ("DG",)}),
])
def test_invalid_method_fails_before_any_run(name, overrides, tmp_path, monkeypatch):
    from dg_envs.experiments import get_experiment

    module = get_experiment(name)
    monkeypatch.setattr(module, "train_run", _no_training, raising=False)  # the paper ones train via paper.py
    with pytest.raises(ValueError, match="algorithm must be one of .* got 'SAC'"):
        run_experiment(name, quick=True, seeds=1, out_dir=tmp_path, progress=False, **overrides)


def test_dg_weight_is_p_over_one_plus_p_with_raw_reward():
    """With U = r, DG's expected update in a context is p/(1+p) (e_y - pi), PG's is p (e_y - pi)."""
    logits = np.array([[1.0, 0.0, -0.5, 0.3]])
    pi = bg.softmax(logits)[0]
    p = pi[0]
    direction = np.eye(4)[0] - pi
    pg = bg.expected_update(logits, np.array([0]), 0.0, "PG", baseline=False)[0]
    dg = bg.expected_update(logits, np.array([0]), 0.0, "DG", baseline=False)[0]
    np.testing.assert_allclose(pg, p * direction, atol=1e-12)
    np.testing.assert_allclose(dg, p / (1 + p) * direction, atol=1e-12)


def test_pg_expected_update_is_the_true_gradient_without_contamination():
    rng = np.random.default_rng(0)
    logits, correct = rng.standard_normal((5, 6)), rng.integers(6, size=5)
    pi = bg.softmax(logits)
    onehot = np.eye(6)[correct]
    true_gradient = pi[np.arange(5), correct][:, None] * (onehot - pi)
    np.testing.assert_allclose(bg.expected_update(logits, correct, 0.0, "PG"), true_gradient, atol=1e-12)


def test_dg_resists_a_landmine_that_pg_follows():
    """30% landmine contamination: DG's update stays much closer to the true gradient than PG's."""
    records = bg.run(bg.Config(contaminations=(0.3,), bonuses=(), seeds=(0,)), progress=False)
    at = {r["method"]: r["one_minus_cos_true"] for r in records if r["sweep"] == "contamination" and r["setting"] == "single"}
    assert at["DG"] < 0.5 * at["PG"]
