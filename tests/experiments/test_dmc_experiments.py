"""The continuous-control experiments of issue 14: ``widening`` (which ``box_gate`` should be the default)
and ``dmc-suite`` (PPO vs DGPPO on the DeepMind Control Suite, clean and under the buggy actor).

Quick modes run end to end into a temporary folder on InvertedPendulum-v5 (any interpreter) and
on Suite tasks where the ``dmc`` extra works (skipped elsewhere); the rules that decide (the
default ``box_gate``, the aggregate, the claims, the throughput ratio) are checked on hand-made
records; bad settings fail with a ValueError naming the setting before any run.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from dg_envs.experiments import make_config, run_experiment
from dg_envs.experiments import dmc_suite, widening
from dg_envs.experiments.common import load_records, run_key, shared_settings
from dg_envs.experiments.training import RunSpec, train_run

needs_dmc = pytest.mark.skipif(not widening.dmc_available(),
                               reason="needs the dmc extra: pip install -e '.[dmc]' (mujoco<4)")
PENDULUM = "InvertedPendulum-v5"
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def _no_training(*args, **kwargs):
    raise AssertionError("training started")


def _page(out_dir, name):
    assert (out_dir / f"{name}.png").stat().st_size > 10_000  # a real figure
    return (out_dir / f"{name}.md").read_text()


# -- train_run's std curve ------------------------------------------------------------------------

def test_train_run_records_the_std_curve_and_the_gates_only_when_asked():
    """std 1 before the first update (log_std_init 0); points every 2 updates and at the end; mean_only's
    scale gate is exactly 1/2 at every update; without std_every the result has no new keys."""
    from dg_envs.algos import DGPPO, RelabelledPPO

    kwargs = {"batch_size": 32, "n_epochs": 1, "device": "cpu", "policy_kwargs": {"net_arch": [8]}}
    spec = RunSpec(algo=DGPPO, env_id="Pendulum-v1", seed=0, total_updates=5, n_steps=64, std_every=2,
                   algo_kwargs={**kwargs, "box_gate": "mean_only"})
    result = train_run(spec, lambda model: 0.0)
    assert [t for t, _ in result["std_curve"]] == [0, 128, 256, 320]
    assert result["std_curve"][0][1] == 1.0 and len(result["final_std"]) == 1
    assert [t for t, _, _ in result["gate_curve"]] == [0, 128, 256, 320]
    assert result["gate_curve"][0][1:] == (None, None)  # before any update
    assert all(scale == 0.5 and 0.0 < gate < 1.0 for _, gate, scale in result["gate_curve"][1:])
    assert result["std_curve"][-1][1] == pytest.approx(result["final_std"][0])

    ppo = train_run(RunSpec(algo=RelabelledPPO, env_id="Pendulum-v1", seed=0, total_updates=2, n_steps=64,
                            algo_kwargs=kwargs), lambda model: 0.0)
    assert not {"std_curve", "gate_curve", "final_std"} & set(ppo)  # existing records keep their fields


# -- widening ---------------------------------------------------------------------------------------

def _ablation(task, method, ret, std, seed=0):
    return {"sweep": "ablation", "task": task, "method": method, "seed": seed, "return": ret, "final_std": [std]}


def test_normalised_returns_by_hand():
    assert widening.normalised_returns({"a": -10.0, "b": 30.0, "c": 0.0}) == {"a": 0.0, "b": 1.0, "c": 0.25}
    assert widening.normalised_returns({"a": 5.0, "b": 5.0}) == {"a": 1.0, "b": 1.0}


def test_a_label_without_a_gate_trains_the_sample_gate_and_keeps_its_key():
    """``"DGPPO"`` is the sample gate whatever DGPPO's default: its settings (hashed into the run
    key) name no gate, so the records made before the default changed still match."""
    from dg_envs.algos import DGPPO

    settings = widening.run_settings("Hopper-v5", "DGPPO", 2048)
    assert "box_gate" not in settings and DGPPO("MlpPolicy", "Pendulum-v1").box_gate != "sample"
    assert widening.model_arguments(settings)[2]["box_gate"] == "sample"
    chosen = widening.run_settings("Hopper-v5", "DGPPO:scale_leave_one_out", 2048)
    assert widening.model_arguments(chosen)[2]["box_gate"] == "scale_leave_one_out"
    assert "box_gate" not in widening.model_arguments(widening.run_settings("Hopper-v5", "PPO", 2048))[2]
    config = widening.Config()
    job = next(j for j in widening.ablation_jobs(config)
               if (j["task"], j["method"], j["seed"]) == ("Hopper-v5", "DGPPO", 0))
    key = run_key(job, shared_settings(config, widening.GRID_FIELDS))
    assert key in {r["key"] for r in load_records(RESULTS / "widening.jsonl")}


def test_choose_default_best_aggregate_wins():
    """Two tasks; per_dimension is best on both (normalised 1, 1), PPO is ignored as a candidate."""
    records = [_ablation(t, m, r, s) for t in ("A", "B") for m, r, s in
               [("PPO", 500.0, 1.0), ("DGPPO", 100.0, 2.0), ("DGPPO:mean_only", 200.0, 1.0),
                ("DGPPO:per_dimension", 400.0, 3.0)]]
    choice = widening.choose_default(records)
    assert (choice.box_gate, choice.label) == ("per_dimension", "DGPPO:per_dimension")
    # normalised over all four methods: (400 - 100) / (500 - 100) = 0.75 on both tasks
    assert choice.aggregate == pytest.approx({"PPO": 1.0, "DGPPO": 0.0, "DGPPO:mean_only": 0.25,
                                              "DGPPO:per_dimension": 0.75})
    assert choice.widening == pytest.approx({"PPO": 1.0, "DGPPO": 2.0, "DGPPO:mean_only": 1.0,
                                             "DGPPO:per_dimension": 3.0})
    assert choice.tasks == ("A", "B")


def test_choose_default_ties_go_to_the_least_widening_then_the_box_gates_order():
    base = [_ablation("A", "PPO", 0.0, 1.0), _ablation("A", "DGPPO", 100.0, 2.0)]
    # 97 is within 0.05 of 100 (normalised 0.97): a tie, and mean_only widens less
    assert widening.choose_default(base + [_ablation("A", "DGPPO:mean_only", 97.0, 1.2)]).box_gate == "mean_only"
    # 94 is not within 0.05: the sample gate wins whatever it widens
    assert widening.choose_default(base + [_ablation("A", "DGPPO:mean_only", 94.0, 1.2)]).box_gate == "sample"
    # equal returns and equal widening: the order of BOX_GATES (scale_leave_one_out before clipped)
    tie = [_ablation("A", "PPO", 0.0, 1.0), _ablation("A", "DGPPO:clipped", 50.0, 1.5),
           _ablation("A", "DGPPO:scale_leave_one_out", 50.0, 1.5)]
    choice = widening.choose_default(tie)
    assert choice.box_gate == "scale_leave_one_out" and "comes first in `BOX_GATES`" in choice.reason


def test_choose_default_counts_only_tasks_every_candidate_ran_and_uses_seed_means():
    records = [_ablation("A", "DGPPO", 10.0, 1.0, seed=0), _ablation("A", "DGPPO", 30.0, 1.0, seed=1),
               _ablation("A", "DGPPO:clipped", 25.0, 1.0),
               _ablation("B", "DGPPO", 0.0, 1.0)]  # task B: clipped missing -> not counted
    choice = widening.choose_default(records)
    assert choice.tasks == ("A",) and choice.box_gate == "clipped"  # mean 20 vs 25
    with pytest.raises(ValueError, match="at least one DGPPO variant"):
        widening.choose_default([_ablation("A", "PPO", 1.0, 1.0)])


@pytest.mark.parametrize("overrides, field", [
    ({"tasks": ("NoSuchTask-v0",)}, "tasks"),
    ({"tasks": ()}, "tasks"),
    ({"methods": ("PPO", "SAC")}, "methods"),
    ({"methods": ("PPO:mean_only", "DGPPO")}, "methods"),
    ({"methods": ("DGPPO:wide",)}, "methods"),
    ({"methods": ("PPO",)}, "methods"),
    ({"methods": ("DGPPO", "DGPPO")}, "methods"),
    ({"long_methods": ()}, "long_methods"),
    ({"long_box_gate": "wide"}, "long_box_gate"),
    ({"timesteps": 0}, "timesteps"),
    ({"long_timesteps": 1.5}, "long_timesteps"),
    ({"std_every": 0}, "std_every"),
    ({"eval_episodes": -1}, "eval_episodes"),
])
def test_widening_bad_settings_fail_before_any_run(overrides, field, tmp_path, monkeypatch):
    monkeypatch.setattr(widening, "train_box_run", _no_training)
    with pytest.raises(ValueError, match=rf"^{field}"):
        run_experiment("widening", quick=True, seeds=1, out_dir=tmp_path, progress=False,
                       **{"tasks": (PENDULUM,), **overrides})


@pytest.mark.skipif(widening.dmc_available(), reason="the dmc extra is installed")
def test_suite_tasks_without_the_extra_name_the_setting_and_the_extra():
    with pytest.raises(ValueError, match=r"^tasks: 'dg_envs/dmc-walker-walk-v0' needs the dmc extra"):
        widening.check_config(widening.Config())
    with pytest.raises(ValueError, match=r"^tasks: .* needs the dmc extra"):
        dmc_suite.check_config(dmc_suite.Config())


def _check_widening_records(records, config):
    ablation = [r for r in records if r["sweep"] == "ablation"]
    assert [(r["task"], r["method"]) for r in ablation] == [(j["task"], j["method"])
                                                            for j in widening.ablation_jobs(config)]
    chosen = widening.choose_default(ablation)
    long = [r for r in records if r["sweep"] == "long"]
    expected = list(config.long_methods) + ([chosen.label] if chosen.label not in config.long_methods else [])
    assert [r["method"] for r in long] == [m for _ in config.long_tasks for m in expected]
    for r in records:
        updates = r["timesteps"] // 1024
        assert r["std_curve"][0] == [0, 1.0] and len(r["std_curve"]) == updates + 1  # std_every=1
        assert r["std_curve"][-1][1] == pytest.approx(np.mean(r["final_std"]))
        assert r["steps_per_second"] > 0 and r["seconds"] > 0
        if r["task"] == PENDULUM:
            assert 1.0 <= r["return"] <= 1000.0  # +1 per step alive
    return chosen


def test_widening_quick_runs_the_ablation_then_the_chosen_variant_and_resumes(tmp_path, monkeypatch):
    """InvertedPendulum-v5 (1-D actions), 2 updates a run: the ablation, the long runs of PPO, DGPPO and the
    rule's choice; the page states the choice; run again, nothing trains and nothing is superseded."""
    table = run_experiment("widening", quick=True, seeds=1, out_dir=tmp_path, progress=False, tasks=(PENDULUM,))
    config = make_config("widening", quick=True, seeds=1, tasks=(PENDULUM,))
    records = load_records(tmp_path / "widening.jsonl")
    chosen = _check_widening_records(records, config)
    page = _page(tmp_path, "widening")
    assert table in page and f'supports `box_gate="{chosen.box_gate}"` as DGPPO\'s default' in page

    monkeypatch.setattr(widening, "train_box_run", _no_training)
    again = run_experiment("widening", quick=True, seeds=1, out_dir=tmp_path, progress=False, tasks=(PENDULUM,))
    assert again == table and load_records(tmp_path / "widening.jsonl") == records
    assert not (tmp_path / "widening.superseded.jsonl").exists()


@needs_dmc
def test_widening_quick_on_a_suite_task(tmp_path):
    """cartpole-swingup through Shimmy: the ablation of three methods, no long runs."""
    run_experiment("widening", quick=True, seeds=1, out_dir=tmp_path, progress=False,
                   tasks=("dg_envs/dmc-cartpole-swingup-v0",), methods=("PPO", "DGPPO", "DGPPO:mean_only"),
                   long_tasks=())
    records = load_records(tmp_path / "widening.jsonl")
    assert [r["method"] for r in records] == ["PPO", "DGPPO", "DGPPO:mean_only"]
    assert all(0.0 <= r["return"] <= 1000.0 and r["std_curve"][0] == [0, 1.0] for r in records)
    assert "| dg_envs/dmc-cartpole-swingup-v0 (2,048) return | final std |" in _page(tmp_path, "widening")


# -- dmc-suite --------------------------------------------------------------------------------------

def _suite(task, friction, method, score, seed, steps_per_second=100.0):
    return {"task": task, "friction": friction, "method": method, "seed": seed, "score": score,
            "return": 1000.0 * score, "timesteps": 2048, "steps_per_second": steps_per_second,
            "curve": [(1024, score / 2), (2048, score)], "std_curve": [(0, 1.0), (2048, 1.1)], "final_std": [1.1]}


def test_regrets_and_seed_aggregates_by_hand():
    scores = {"A": {"PPO": 0.8, "DGPPO": 0.6}, "B": {"PPO": 0.1, "DGPPO": 0.5}}
    assert dmc_suite.regrets(scores) == pytest.approx({"PPO": 0.2, "DGPPO": 0.1})  # (0 + 0.4) / 2, (0.2 + 0) / 2
    records = [_suite("A", "clean", "DGPPO", 0.6, 0), _suite("B", "clean", "DGPPO", 0.4, 0),
               _suite("A", "clean", "DGPPO", 0.8, 1)]  # seed 1 lacks task B: left out
    assert dmc_suite.seed_aggregates(records, "clean", "DGPPO") == pytest.approx([0.5])
    means = dmc_suite.mean_scores(records, "clean")
    assert means["A"] == pytest.approx({"DGPPO": 0.7}) and means["B"] == {"DGPPO": 0.4}


def test_claims_clean_is_not_worse_and_bug_is_better_by_more_than_noise():
    tasks = ("A", "B")
    records = []
    for seed, jitter in enumerate((0.0, 0.02, -0.02)):
        for t in tasks:
            records += [_suite(t, "clean", "PPO", 0.50 + jitter, seed), _suite(t, "clean", "DGPPO", 0.49 + jitter, seed),
                        _suite(t, "bug", "PPO", 0.20 + jitter, seed), _suite(t, "bug", "DGPPO", 0.40 + jitter, seed)]
    rows = {claim.name: verdict for claim, verdict, _ in dmc_suite.claims(records)}
    # clean: DGPPO behind by 0.01, the noise is sqrt(2) * sem = sqrt(2) * 0.02 / sqrt(3) = 0.016
    assert rows["DGPPO's aggregate >= PPO's, clean"].verdict == dmc_suite.HOLDS_WITHIN_NOISE
    assert rows["DGPPO's aggregate > PPO's, buggy actor"].verdict == "holds"
    behind = [dict(r, score=r["score"] - 0.1) if (r["friction"], r["method"]) == ("clean", "DGPPO") else r
              for r in records]
    rows = {claim.name: verdict for claim, verdict, _ in dmc_suite.claims(behind)}
    assert rows["DGPPO's aggregate >= PPO's, clean"].verdict == "does not hold"


def test_throughput_is_the_ratio_of_the_medians():
    records = [_suite("A", "clean", "PPO", 0.5, s, sps) for s, sps in enumerate((100.0, 200.0, 1000.0))]
    records += [_suite("A", "clean", "DGPPO", 0.5, s, sps) for s, sps in enumerate((190.0, 90.0, 2000.0))]
    table, ratios = dmc_suite.throughput(records)
    assert dict(ratios) == pytest.approx({"A": 0.95, "all runs": 0.95})  # 190 / 200
    assert "| A | 200 | 190 | 0.950 |" in table


def test_dmc_suite_analyse_on_hand_made_records(tmp_path):
    records = [_suite(t, f, m, s, seed) for t, s in (("dg_envs/dmc-cartpole-swingup-v0", 0.5),
                                                  ("dg_envs/dmc-reacher-easy-v0", 0.9))
               for f in ("clean", "bug") for m in ("PPO", "DGPPO") for seed in (0, 1)]
    table = dmc_suite.analyse(records, tmp_path)
    page = _page(tmp_path, "dmc-suite")
    assert table in page and "Not the Suite" not in page
    assert "| clean | PPO | 0.7 ± 0 (n=2) | 0.000 | 0 of 2 |" in page  # equal scores: nobody worst alone
    assert "ratio of the medians over all runs: **1.000**" in page


@pytest.mark.parametrize("overrides, field", [
    ({"tasks": ("Hopper-v5",)}, "tasks"),
    ({"methods": ("DGPPO", "DGPPO")}, "methods"),
    ({"methods": ("A2C:clipped",)}, "methods"),
    ({"frictions": ("stale",)}, "frictions"),
    ({"frictions": ()}, "frictions"),
    ({"bug_p": 1.5}, "bug_p"),
    ({"timesteps": 0}, "timesteps"),
    ({"eval_points": 0}, "eval_points"),
])
def test_dmc_suite_bad_settings_fail_before_any_run(overrides, field, tmp_path, monkeypatch):
    monkeypatch.setattr(dmc_suite, "train_box_run", _no_training)
    with pytest.raises(ValueError, match=rf"^{field}"):
        run_experiment("dmc-suite", quick=True, seeds=1, out_dir=tmp_path, progress=False,
                       **{"tasks": (PENDULUM,), **overrides})


def _check_suite_quick(tmp_path, config):
    records = load_records(tmp_path / "dmc-suite.jsonl")
    assert [(r["task"], r["friction"], r["method"]) for r in records] == [
        (j["task"], j["friction"], j["method"]) for j in dmc_suite.grid(config)]
    for r in records:
        assert r["score"] == pytest.approx(r["return"] / 1000.0) and 0.0 <= r["score"] <= 1.0
        assert r["steps_per_second"] > 0 and r["std_curve"][0] == [0, 1.0] and r["timesteps"] == 2048
    return records, _page(tmp_path, "dmc-suite")


def test_dmc_suite_quick_with_the_stand_in(tmp_path):
    """InvertedPendulum-v5 in place of the Suite (it may run anywhere): PPO and DGPPO, clean and buggy."""
    table = run_experiment("dmc-suite", quick=True, seeds=1, out_dir=tmp_path, progress=False, tasks=(PENDULUM,))
    records, page = _check_suite_quick(tmp_path, make_config("dmc-suite", quick=True, seeds=1, tasks=(PENDULUM,)))
    assert table in page and "**Not the Suite**: InvertedPendulum-v5" in page
    assert all(1.0 <= r["return"] for r in records)


@needs_dmc
def test_dmc_suite_quick_on_the_suite(tmp_path):
    """cartpole-swingup and reacher-easy, clean and under the full-torque landmine; the page's tables and claims."""
    table = run_experiment("dmc-suite", quick=True, seeds=1, out_dir=tmp_path, progress=False)
    config = make_config("dmc-suite", quick=True, seeds=1)
    assert config.tasks == ("dg_envs/dmc-cartpole-swingup-v0", "dg_envs/dmc-reacher-easy-v0")
    records, page = _check_suite_quick(tmp_path, config)
    assert table in page and "Not the Suite" not in page
    assert "DGPPO's aggregate >= PPO's, clean" in page and "DGPPO's aggregate > PPO's, buggy actor" in page
    assert "ratio of the medians over all runs" in page
    saved = json.loads((tmp_path / "dmc-suite.config.json").read_text())
    assert saved["tasks"] == list(config.tasks)


@needs_dmc
def test_the_buggy_actor_plays_full_torque_on_a_suite_task():
    config = dmc_suite.Config(bug_p=0.25)
    bug = dmc_suite.friction_settings(config, "dg_envs/dmc-cheetah-run-v0", "bug")["bug"]
    assert bug["p"] == 0.25 and bug["landmine"].dtype == np.float64
    np.testing.assert_array_equal(bug["landmine"], np.ones(6))
    assert dmc_suite.friction_settings(config, "dg_envs/dmc-cheetah-run-v0", "clean") == {}
