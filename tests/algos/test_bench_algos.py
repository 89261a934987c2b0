"""The algorithm benchmarks' plumbing (tiny sizes: a smoke test of what they measure, not a measurement)."""

import pytest

from dg_envs.bench.algos import SUITE_TASK, bench_suite_throughput, bench_throughput
from dg_envs.experiments.widening import dmc_available


def test_throughput_passes_candidate_kwargs_to_dgppo_only():
    result = bench_throughput(total_timesteps=64, repeats=1, n_envs=1, n_steps=32, batch_size=32, n_epochs=1,
                              candidate_kwargs={"eta": 2.0})
    assert result["candidate_kwargs"] == {"eta": 2.0}
    assert result["ratio"] > 0 and result["cpu_ratio"] > 0
    assert len(result["repeats"]["DGPPO"]) == len(result["repeats"]["PPO"]) == 1


@pytest.mark.skipif(not dmc_available(), reason="needs the dmc extra (dm_control, shimmy, mujoco < 4)")
def test_suite_throughput_measures_each_box_gate_on_a_suite_task():
    results = bench_suite_throughput(total_timesteps=128, repeats=1, n_steps=64, batch_size=64, n_epochs=1)
    assert sorted(results) == ["sample", "scale_leave_one_out"]
    for gate, result in results.items():
        assert result["env_id"] == SUITE_TASK
        assert result["candidate_kwargs"] == {"box_gate": gate}
        assert result["candidate_steps_per_s"] > 0 and result["baseline_steps_per_s"] > 0
