"""Sample accounting under RLlib's fault tolerance: :class:`SampleAccountingCallback`.

With ``.fault_tolerance(restart_failed_env_runners=True)`` a dead env runner does not end the
run: RLlib takes it out of service, Ray restarts the actor and RLlib brings it back. What the
dead actor was simulating is gone: RLlib's lifetime counters (``num_env_steps_sampled_lifetime``
under ``result["env_runners"]``, ``num_env_steps_trained_lifetime`` under
``result["learners"]["__all_modules__"]``) count only the samples that reached the algorithm,
and RLlib's fault-tolerance stats (``result["fault_tolerance"]``) count restarts, not samples.
:class:`SampleAccountingCallback` writes the missing line on every training result,
``result["sample_accounting"]``:

* ``env_runner_restarts``, ``env_runner_responses_dropped``, ``env_runners_unhealthy`` — from
  RLlib's ``fault_tolerance`` stats (``num_remote_worker_restarts``,
  ``num_env_runners_dropped_lifetime``: sample responses a synchronous, ``sample_timeout_s``-bounded
  round gave up on; the env runners out of service now: configured minus ``num_healthy_workers``);
* ``num_env_steps_sampled_lifetime``, ``num_env_steps_trained_lifetime`` — RLlib's lifetime
  counters of the env steps delivered by the env runners and trained on by the learners (APPO
  replays each batch from its circular buffer, so trained may exceed sampled: their difference
  says nothing about losses);
* ``requests_in_flight_per_env_runner``, ``env_steps_per_request_at_most`` and
  ``lost_env_steps_at_most`` — see :func:`lost_env_steps_at_most`.

Why a bound and not a count: a failed runner's in-flight sample requests never return, and RLlib
forgets them the moment it marks the actor unhealthy (its ``FaultTolerantActorManager`` drops
the request references without counting them, and the steps they held were logged only in the
dead actor's own metrics). So nobody outside that actor knows how far each request had got: it
may have been queued behind another one (0 steps) or one env step from done. What is known is how
many requests a runner may have in flight and how many env steps one request may simulate; the
product, times the failures, is the most that can have been lost.

>>> from ray.rllib.algorithms.appo import APPOConfig
>>> config = APPOConfig().env_runners(num_env_runners=2, num_envs_per_env_runner=4, max_requests_in_flight_per_env_runner=2)
>>> lost_env_steps_at_most(config, failures=3)  # 3 x 2 requests x (50 x 4 + 3) env steps
1218
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.impala import IMPALAConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    ENV_RUNNER_RESULTS,
    FAULT_TOLERANCE_STATS,
    LEARNER_RESULTS,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
)

__all__ = [
    "ENV_RUNNER_RESPONSES_DROPPED", "ENV_RUNNER_RESTARTS", "ENV_RUNNERS_UNHEALTHY", "ENV_STEPS_PER_REQUEST_AT_MOST",
    "LOST_ENV_STEPS_AT_MOST", "REQUESTS_IN_FLIGHT_PER_ENV_RUNNER", "SAMPLE_ACCOUNTING", "SampleAccountingCallback",
    "env_steps_per_request_at_most", "lost_env_steps_at_most", "requests_in_flight_per_env_runner", "sample_accounting",
]

SAMPLE_ACCOUNTING = "sample_accounting"
ENV_RUNNER_RESTARTS = "env_runner_restarts"
ENV_RUNNER_RESPONSES_DROPPED = "env_runner_responses_dropped"
ENV_RUNNERS_UNHEALTHY = "env_runners_unhealthy"
REQUESTS_IN_FLIGHT_PER_ENV_RUNNER = "requests_in_flight_per_env_runner"
ENV_STEPS_PER_REQUEST_AT_MOST = "env_steps_per_request_at_most"
LOST_ENV_STEPS_AT_MOST = "lost_env_steps_at_most"
_TRAINED_PATH = (LEARNER_RESULTS, ALL_MODULES, NUM_ENV_STEPS_TRAINED_LIFETIME)
_SAMPLED_PATH = (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)


def requests_in_flight_per_env_runner(config: Any) -> int:
    """How many sample requests one env runner may hold at once.

    IMPALA and APPO (``IMPALAConfig`` and its subclasses) sample asynchronously, up to
    ``max_requests_in_flight_per_env_runner`` requests per runner (the cap RLlib's actor manager
    enforces); the other algorithms (PPO, ...) sample in synchronous rounds, one request per
    runner at a time.
    """
    if isinstance(config, IMPALAConfig):
        return max(1, int(config.max_requests_in_flight_per_env_runner))
    return 1


def env_steps_per_request_at_most(config: Any) -> int | None:
    """The most env steps one sample request of one env runner simulates; None: no bound.

    A request is ``EnvRunner.sample()`` with RLlib's defaults: in ``"truncate_episodes"`` mode it
    runs ``rollout_fragment_length x num_envs_per_env_runner`` env steps, and, as RLlib's
    ``sample()`` documents, up to ``num_envs_per_env_runner - 1`` more (all sub-envs step
    together; those resetting count no step, so the count can cross the target in the last
    round). ``rollout_fragment_length="auto"`` is resolved by the config's own
    ``get_rollout_fragment_length(worker_index)``, whose split of the train batch gives some
    runners one step more; the largest is used. In ``"complete_episodes"`` mode a request runs
    whole episodes of any length: None.
    """
    if config.batch_mode == "complete_episodes":
        return None
    num_envs = int(config.num_envs_per_env_runner)
    fragment = max(config.get_rollout_fragment_length(i) for i in range(1, max(1, config.num_env_runners or 0) + 1))
    return int(fragment) * num_envs + num_envs - 1


def lost_env_steps_at_most(config: Any, *, failures: int) -> int | None:
    """Upper bound on the env steps failed env runners simulated but never delivered.

    ``failures x requests_in_flight_per_env_runner(config) x env_steps_per_request_at_most(config)``;
    0 without failures, None where a request has no bound (``"complete_episodes"``).
    ``failures`` counts the times a runner went out of service with requests that never came
    back (:func:`sample_accounting` counts restarts, runners out of service now and dropped
    responses).
    """
    if failures < 0:
        raise ValueError(f"failures must be >= 0, got {failures}")
    if failures == 0:
        return 0
    per_request = env_steps_per_request_at_most(config)
    if per_request is None:
        return None
    return failures * requests_in_flight_per_env_runner(config) * per_request


def sample_accounting(config: Any, fault_tolerance: dict[str, Any], *, sampled: int, trained: int) -> dict[str, Any]:
    """The ``sample_accounting`` dict from RLlib's ``fault_tolerance`` stats and lifetime counters.

    The failures behind the bound are the runners restored so far
    (``num_remote_worker_restarts``), those out of service now (configured runners minus
    ``num_healthy_workers``: their requests were dropped when they went down, before any
    restart) and the responses a synchronous round dropped on its timeout
    (``num_env_runners_dropped_lifetime``, counted as a whole lost request each: an over-count
    where the runner had in fact died, which the bound allows).

    >>> from ray.rllib.algorithms.ppo import PPOConfig
    >>> config = PPOConfig().env_runners(num_env_runners=2, num_envs_per_env_runner=1).training(train_batch_size_per_learner=100)
    >>> stats = {"num_remote_worker_restarts": 1, "num_healthy_workers": 2, "num_env_runners_dropped_lifetime": 0}
    >>> sample_accounting(config, stats, sampled=500, trained=400)["lost_env_steps_at_most"]  # 1 x 1 x 50
    50
    """
    restarts = int(fault_tolerance.get("num_remote_worker_restarts", 0))
    dropped = int(fault_tolerance.get("num_env_runners_dropped_lifetime", 0))
    healthy = fault_tolerance.get("num_healthy_workers")
    unhealthy = 0 if healthy is None else max(0, int(config.num_env_runners or 0) - int(healthy))
    return {
        ENV_RUNNER_RESTARTS: restarts,
        ENV_RUNNER_RESPONSES_DROPPED: dropped,
        ENV_RUNNERS_UNHEALTHY: unhealthy,
        NUM_ENV_STEPS_SAMPLED_LIFETIME: int(sampled),
        NUM_ENV_STEPS_TRAINED_LIFETIME: int(trained),
        REQUESTS_IN_FLIGHT_PER_ENV_RUNNER: requests_in_flight_per_env_runner(config),
        ENV_STEPS_PER_REQUEST_AT_MOST: env_steps_per_request_at_most(config),
        LOST_ENV_STEPS_AT_MOST: lost_env_steps_at_most(config, failures=restarts + unhealthy + dropped),
    }


def _lifetime(result: dict, algorithm: Any, path: tuple[str, ...]) -> int:
    """A lifetime counter from the result; from the algorithm's MetricsLogger where this result lacks it
    (e.g. an iteration without a learner update has no learner results)."""
    node: Any = result
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if node is None:
        node = algorithm.metrics.peek(path, default=0)
    return int(node)


class SampleAccountingCallback(RLlibCallback):
    """Adds ``result["sample_accounting"]`` (see :func:`sample_accounting`) to every training result.

    Composes with the other callbacks: the DG configs keep :class:`~dg_envs.rllib.ExecutedActionCallback`
    beside it (``DGAPPOConfig().callbacks(SampleAccountingCallback)``); on any other RLlib config
    pass both, ``config.callbacks([ExecutedActionCallback, SampleAccountingCallback])``.

    >>> from dg_envs.rllib import DGAPPOConfig
    >>> [c.__name__ for c in DGAPPOConfig().callbacks(SampleAccountingCallback).callbacks_class]
    ['ExecutedActionCallback', 'SampleAccountingCallback']
    """

    def on_train_result(self, *, algorithm: Any, metrics_logger: Any = None, result: dict, **kwargs: Any) -> None:
        # RLlib calls this from Algorithm.log_result(), after _compile_iteration_results() has put
        # the fault-tolerance stats in the result and before the result is logged, so the new
        # entry reaches Tune's loggers too.
        result[SAMPLE_ACCOUNTING] = sample_accounting(
            algorithm.config, result.get(FAULT_TOLERANCE_STATS, {}),
            sampled=_lifetime(result, algorithm, _SAMPLED_PATH), trained=_lifetime(result, algorithm, _TRAINED_PATH))
