"""The RLlib learners' speed benchmark in quick mode: its structure and sanity, not its numbers."""

import math

import pytest

pytest.importorskip("ray.rllib")

from dg_envs.bench.rllib_learners import KEEP_FRACTION, bench_rllib_learners, format_table  # noqa: E402


def test_quick_bench_reports_finite_ratios_and_kondo_ppo_skips_backward_samples():
    results = bench_rllib_learners(quick=True)
    assert set(results) == {"settings", "learners", "ratios"}
    learners = results["learners"]
    assert {"RLlib APPO", "APPO", "DG-APPO", "DG-APPO no V-trace", "Kondo-APPO 3%",
            "DG-PPO mb128", "Kondo-PPO 3% mb128"} == set(learners)
    for stats in learners.values():
        assert stats["seconds"] > 0 and stats["cpu_seconds"] > 0
    names = [r["name"] for r in results["ratios"]]
    assert "DG-APPO / APPO, updates/s" in names and len(names) == 5
    for record in results["ratios"]:
        assert record["candidate"] in learners and record["baseline"] in learners
        assert math.isfinite(record["ratio"]) and record["ratio"] > 0
        assert math.isfinite(record["cpu_ratio"]) and record["cpu_ratio"] > 0
    # Kondo-PPO: the kept 3% of a 128-sample minibatch (4) plus a critic sample as large,
    # overlaps allowed; DG-PPO: the whole minibatch. APPO's Kondo is masked: all samples.
    kept = round(KEEP_FRACTION * 128)
    assert learners["DG-PPO mb128"]["backward_samples_per_minibatch"] == 128
    assert kept <= learners["Kondo-PPO 3% mb128"]["backward_samples_per_minibatch"] <= 2 * kept
    assert learners["Kondo-APPO 3%"]["backward_samples_per_minibatch"] == learners["DG-APPO"][
        "backward_samples_per_minibatch"] == results["settings"]["appo_train_batch"]
    table = format_table(results)
    assert "DG-APPO / APPO, updates/s" in table and "Kondo-PPO 3% mb128" in table
