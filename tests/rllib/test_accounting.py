"""The sample accounting's bound on lost env steps, checked by arithmetic (no Ray cluster started)."""

from types import SimpleNamespace

import pytest

pytest.importorskip("ray.rllib")

from ray.rllib.algorithms.appo import APPOConfig  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402

from dg_envs.rllib import DGAPPOConfig, DGPPOConfig, ExecutedActionCallback, SampleAccountingCallback  # noqa: E402
from dg_envs.rllib.accounting import (  # noqa: E402
    LOST_ENV_STEPS_AT_MOST, SAMPLE_ACCOUNTING, env_steps_per_request_at_most, lost_env_steps_at_most,
    requests_in_flight_per_env_runner, sample_accounting)


def _stats(restarts=0, healthy=2, dropped=0):
    return {"num_remote_worker_restarts": restarts, "num_healthy_workers": healthy,
            "num_env_runners_dropped_lifetime": dropped}


def test_appo_bound_is_failures_times_requests_in_flight_times_a_request():
    config = DGAPPOConfig().env_runners(num_env_runners=2, num_envs_per_env_runner=4,
                                        max_requests_in_flight_per_env_runner=3)
    assert requests_in_flight_per_env_runner(config) == 3
    assert env_steps_per_request_at_most(config) == 50 * 4 + 3  # IMPALA's fragment 50; 4 envs may overshoot by 3
    assert lost_env_steps_at_most(config, failures=0) == 0
    assert lost_env_steps_at_most(config, failures=2) == 2 * 3 * 203
    config.env_runners(rollout_fragment_length=10, num_envs_per_env_runner=1)
    assert lost_env_steps_at_most(config, failures=1) == 3 * 10
    with pytest.raises(ValueError, match="failures must be >= 0"):
        lost_env_steps_at_most(config, failures=-1)


def test_ppo_samples_one_request_at_a_time_with_auto_fragments_resolved_as_rllib_does():
    # "auto": 1000 / (3 runners x 2 envs) = 166.67 -> RLlib gives worker 1 (and 2) 167 steps per env, worker 3 166
    config = DGPPOConfig().env_runners(num_env_runners=3, num_envs_per_env_runner=2,
                                       max_requests_in_flight_per_env_runner=5).training(train_batch_size_per_learner=1000)
    assert [config.get_rollout_fragment_length(i) for i in (1, 2, 3)] == [167, 167, 166]
    assert requests_in_flight_per_env_runner(config) == 1  # synchronous rounds, whatever the async cap says
    assert env_steps_per_request_at_most(config) == 167 * 2 + 1
    assert lost_env_steps_at_most(config, failures=4) == 4 * 335
    config.env_runners(batch_mode="complete_episodes")
    assert env_steps_per_request_at_most(config) is None  # whole episodes: no bound
    assert lost_env_steps_at_most(config, failures=1) is None and lost_env_steps_at_most(config, failures=0) == 0


def test_failures_are_restarts_runners_down_now_and_dropped_responses():
    config = PPOConfig().env_runners(num_env_runners=2, num_envs_per_env_runner=1).training(train_batch_size_per_learner=100)
    assert sample_accounting(config, _stats(), sampled=300, trained=200) == {
        "env_runner_restarts": 0, "env_runner_responses_dropped": 0, "env_runners_unhealthy": 0,
        "num_env_steps_sampled_lifetime": 300, "num_env_steps_trained_lifetime": 200,
        "requests_in_flight_per_env_runner": 1, "env_steps_per_request_at_most": 50, "lost_env_steps_at_most": 0}
    # one runner restored, the other down now (its requests already dropped), one timed-out response
    accounting = sample_accounting(config, _stats(restarts=1, healthy=1, dropped=1), sampled=300, trained=200)
    assert (accounting["env_runner_restarts"], accounting["env_runners_unhealthy"], accounting["env_runner_responses_dropped"]) == (1, 1, 1)
    assert accounting[LOST_ENV_STEPS_AT_MOST] == 3 * 50
    assert sample_accounting(config, {}, sampled=0, trained=0)[LOST_ENV_STEPS_AT_MOST] == 0  # no remote runners


class _Metrics:
    """Stands in for the algorithm's MetricsLogger: ``peek`` of the lifetime counters."""

    def __init__(self, values):
        self.values = values

    def peek(self, path, default=None):
        return self.values.get(path, default)


def test_callback_adds_the_accounting_to_the_result_and_composes_with_the_protocol_callback():
    config = APPOConfig().env_runners(num_env_runners=2, num_envs_per_env_runner=4)
    assert DGAPPOConfig().callbacks(SampleAccountingCallback).callbacks_class == [ExecutedActionCallback, SampleAccountingCallback]
    assert config.copy().callbacks([ExecutedActionCallback, SampleAccountingCallback]).callbacks_class == [
        ExecutedActionCallback, SampleAccountingCallback]
    algorithm = SimpleNamespace(config=config, metrics=_Metrics({("learners", "__all_modules__", "num_env_steps_trained_lifetime"): 800}))
    result = {"fault_tolerance": _stats(restarts=2), "env_runners": {"num_env_steps_sampled_lifetime": 1200}, "learners": {}}
    SampleAccountingCallback().on_train_result(algorithm=algorithm, metrics_logger=algorithm.metrics, result=result)
    accounting = result[SAMPLE_ACCOUNTING]
    assert accounting["num_env_steps_sampled_lifetime"] == 1200  # from the result
    assert accounting["num_env_steps_trained_lifetime"] == 800  # not in this result: from the MetricsLogger
    assert accounting[LOST_ENV_STEPS_AT_MOST] == 2 * 1 * (50 * 4 + 3)
