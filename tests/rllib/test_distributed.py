"""The ``distributed`` experiment (RLlib APPO vs DG-APPO over k env runners) runs end to end; without Ray it says which extra it needs."""

import importlib.util
import json

import numpy as np
import pytest

from dg_envs.experiments import distributed, make_config, run_experiment


def test_grid_and_config_checks():
    config = make_config("distributed", quick=True, seeds=1)
    assert [(j["method"], j["env_runners"]) for j in distributed.grid(config)] == [
        ("APPO", 1), ("APPO", 2), ("DG-APPO+vtrace", 1), ("DG-APPO+vtrace", 2), ("DG-APPO", 1), ("DG-APPO", 2)]
    with pytest.raises(ValueError, match="tasks must be among"):
        distributed.check_config(make_config("distributed", tasks=("atari",)))
    with pytest.raises(ValueError, match="env_runners must be an integer >= 1"):
        distributed.check_config(make_config("distributed", env_runners=(0,)))


def test_frictions_act_per_answer():
    """Token reversal's landmine replaces whole answers and its coin the answer's (terminal) reward;
    on a one-step task a step is the answer, so its jobs (and their recorded keys) are unchanged."""
    import gymnasium as gym

    from dg_envs.experiments.common import run_key, shared_settings
    from dg_envs.wrappers import apply_frictions  # what dg_envs.rllib.make_env_creator applies

    config = make_config("distributed", seeds=1)
    token = apply_frictions(gym.make("dg_envs/TokenReversal-v0"), **distributed.friction_settings(config, "token-reversal"))
    frictions = {type(w).__name__: w for w in _wrappers(token)}
    assert frictions["BuggyActor"].per == "episode"
    assert (frictions["RewardCorruption"].per, frictions["RewardCorruption"].terminal_only) == ("episode", True)
    assert distributed.friction_settings(config, "mnist") == {"bug": {"p": 0.1}, "reward_corruption": {"p": 0.1}}
    jobs = {(j["task"], j["method"], j["env_runners"]): j for j in distributed.grid(config)}
    assert "answer_frictions" in jobs["token-reversal", "APPO", 1]["settings"]
    shared = shared_settings(config, distributed.GRID_FIELDS)
    assert run_key(jobs["mnist", "APPO", 1], shared).endswith("#3343e1844d")  # the record in docs/results


def _wrappers(env):
    while hasattr(env, "env"):
        yield env
        env = env.env


def test_every_job_asks_ray_for_the_sweeps_largest_k(monkeypatch):
    """The first job starts the local cluster; sized by its own k=1 it refused the k=4 job after it
    (a full sweep stopped with "env_runners=4 needs as many CPUs in the Ray cluster, which has 2")."""
    asked = []

    def record_and_stop(address, env_runners):
        asked.append((address, env_runners))
        raise RuntimeError("stop before building the algorithm")

    monkeypatch.setattr(distributed, "ensure_ray", record_and_stop)
    config = make_config("distributed", seeds=1, env_runners=(1, 4, 2))
    for job in distributed.grid(config)[:3]:
        with pytest.raises(RuntimeError, match="stop before"):
            distributed.run_job(job, config)
    assert [job["env_runners"] for job in distributed.grid(config)[:3]] == [1, 4, 2]
    assert asked == [(None, 4)] * 3

@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed")
def test_without_ray_the_run_names_the_rllib_extra(tmp_path):
    with pytest.raises(ImportError, match=r"dg-envs\[rllib\]"):
        run_experiment("distributed", quick=True, seeds=1, out_dir=tmp_path, progress=False)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the rllib extra")
def test_quick_mode_writes_records_page_and_figure(local_ray, tmp_path):
    """The quick mode's bandit, cut to two runs (DG-APPO without correction and APPO, 2 env runners)
    to stay near a minute on a busy 2-core machine: every record holds a greedy error in [0, 1] over the
    bandit's 10 contexts (random play: 0.9), a measured policy lag (at least one run with a stale sample:
    the learner updates while the runners sample), positive throughputs, and the page shows the table."""
    table = run_experiment("distributed", quick=True, seeds=1, out_dir=tmp_path, progress=False,
                           methods=("APPO", "DG-APPO"), env_runners=(2,))
    records = [json.loads(line) for line in (tmp_path / "distributed.jsonl").read_text().splitlines()]
    assert [(r["method"], r["env_runners"]) for r in records] == [("APPO", 2), ("DG-APPO", 2)]
    for r in records:
        assert 0.0 <= r["error"] <= 1.0 and r["error"] * 10 == pytest.approx(round(r["error"] * 10))
        assert r["env_steps_trained"] >= 3_000, r  # the quick budget was reached, not the time cap
        assert r["env_steps_per_second"] > 0 and r["updates_per_second"] > 0
        assert r["policy_lag_iteration_means"] and np.isfinite(r["policy_lag_mean"])
    assert max(r["policy_lag_max"] for r in records) >= 1
    assert (tmp_path / "distributed.png").stat().st_size > 10_000
    page = (tmp_path / "distributed.md").read_text()
    assert table in page and "| bandit | DG-APPO | 2 |" in page and "dg-envs experiment distributed --quick" in page
