"""Experiment ``distributed``: APPO vs DG-APPO on Ray RLlib, learning from asynchronous env runners.

Needs the ``rllib`` extra (``pip install "dg-envs[rllib]"``); without it the experiment raises an
``ImportError`` naming the extra when it runs (``import dg_envs`` never needs Ray).

Staleness here is not simulated: ``env_runners`` asynchronous RLlib env runners sample with the
weights they last received while the learner (in the driver process, ``num_learners=0``) keeps
updating, and every trained sample's *policy lag* (learner updates between the weights that
acted and the weights trained, from RLlib's weights sequence numbers; :mod:`dg_envs.rllib.learners`)
is measured. Methods (``method_settings``):

* ``APPO``: RLlib's APPO loss (V-trace targets and advantages, clipped importance ratio) in
  :class:`~dg_envs.rllib.learners.APPOLagTorchLearner` (our APPO learner with the gate off, whose
  loss equals RLlib's, tested), so its policy lag is measured as DG-APPO's; like every method it
  trains on the executed actions (:class:`~dg_envs.rllib.ExecutedActionCallback`);
* ``DG-APPO+vtrace``: :class:`~dg_envs.rllib.DGAPPOConfig`, the DG gate on APPO's corrected loss;
* ``DG-APPO``: DG without any importance correction (``vtrace_correction=False``, the paper's).

The env-level frictions are on in every run (:func:`dg_envs.rllib.make_env_creator`), per
answer as in the papers (:data:`ANSWER_FRICTIONS`): the buggy actor (``bug``: the landmine
executed, reported with log-prob 0) and reward corruption (``reward_corruption``: the answer's
reward a coin flip). Tasks: ``bandit``
(``dg_envs/ContextualBandit-v0``, seconds; the quick mode), ``mnist`` (``dg_envs/MNISTBandit-v0``)
and ``token-reversal`` (``dg_envs/TokenReversal-v0``, observations one-hot encoded by RLlib's
``FlattenObservations`` connector).

Per run: the greedy error of the learner's RLModule on clean data (bandit: every context; MNIST:
the test split; token reversal: the fraction of imperfect answers over 256 clean episodes — the
same evaluators as the SB3 experiments, :mod:`dg_envs.experiments.training`), the policy lag
(mean and max over the run, and the per-iteration means for a histogram), env steps sampled
per second, learner updates per second (both from the first iteration that sampled: the env
runners' start-up left out; the learner runs with one torch thread, as every experiment's runs)
and wall seconds.

On a multi-node Ray cluster (``dg_envs`` installed on every node)::

    ray start --head --port=6379            # on the head node
    ray start --address=HEAD:6379           # on each worker node
    dg-envs experiment distributed --set address="'HEAD:6379'"

``address=None`` (the default) starts a local cluster with ``max(cpu count, largest k)`` logical
CPUs (on a 2-core machine ``k = 4`` runners share the 2 cores: the lag then also measures the
scheduling).

Example:
    >>> from dg_envs.experiments import distributed as d
    >>> [(j["task"], j["method"], j["env_runners"]) for j in d.grid(d.Config(methods=("APPO",), seeds=(0,)))][:3]
    [('mnist', 'APPO', 1), ('mnist', 'APPO', 2), ('mnist', 'APPO', 4)]
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, run_sweep, write_page
from dg_envs.validation import check_int, check_real

NAME = "distributed"

GRID_FIELDS = ("tasks", "methods", "method_settings", "env_runners", "address")

#: Task name -> (env id, env kwargs).
TASKS = {
    "bandit": ("dg_envs/ContextualBandit-v0", {}),
    "mnist": ("dg_envs/MNISTBandit-v0", {"split": "train"}),
    "token-reversal": ("dg_envs/TokenReversal-v0", {"length": 5, "vocab_size": 2}),
}

#: Method label -> ``{"algorithm": "APPO" | "DGAPPO", **training options}``.
METHODS = {
    "APPO": {"algorithm": "APPO"},
    "DG-APPO+vtrace": {"algorithm": "DGAPPO", "vtrace_correction": True, "eta": 1.0},
    "DG-APPO": {"algorithm": "DGAPPO", "vtrace_correction": False, "eta": 1.0},
}

#: Task name -> the friction arguments that make ``bug`` and ``reward_corruption`` act per
#: *answer* where an answer takes more than one step (one-step tasks need none: there a step is
#: the answer). As the papers' actors: the landmine replaces a whole answer, and the coin replaces
#: the answer's reward (the last step's), not the zero rewards of the steps before it.
ANSWER_FRICTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "token-reversal": {"bug": {"per": "episode"}, "reward_corruption": {"per": "episode", "terminal_only": True}},
}

MODULE = "default_policy"


@dataclass
class Config:
    """Settings of the RLlib APPO vs DG-APPO sweep over the number of env runners."""

    tasks: tuple[str, ...] = ("mnist", "token-reversal")
    """Tasks (keys of :data:`TASKS`)."""
    methods: tuple[str, ...] = ("APPO", "DG-APPO+vtrace", "DG-APPO")
    """Method labels (keys of ``method_settings``)."""
    method_settings: dict[str, dict] = field(default_factory=lambda: {k: dict(v) for k, v in METHODS.items()})
    """Label -> ``{"algorithm": "APPO" or "DGAPPO", **DGAPPOConfig.training options}``."""
    env_runners: tuple[int, ...] = (1, 2, 4)
    """Numbers k of asynchronous env runners (one run each)."""
    envs_per_env_runner: int = 4
    """Sub-environments per env runner."""
    bug: float = 0.1
    """Buggy actor (:class:`~dg_envs.wrappers.BuggyActor`): per answer (:data:`ANSWER_FRICTIONS`),
    the probability that the landmine runs instead, reported with log-prob 0."""
    reward_corruption: float = 0.1
    """Reward corruption (:class:`~dg_envs.wrappers.RewardCorruption`): per answer
    (:data:`ANSWER_FRICTIONS`), the probability that the reward is replaced by a coin flip."""
    total_env_steps: int = 200_000
    """Training stops once the learner has trained on this many env steps (APPO's circular buffer
    trains on each sampled step more than once), or at ``max_seconds``."""
    max_seconds: float = 1800.0
    """Wall-clock cap on one run's training loop (seconds; the env runners' start-up counts, it
    can take tens of seconds on a busy machine)."""
    train_batch_size: int = 256
    """Env steps per learner update."""
    learning_rate: float = 5e-4
    """Adam's step size."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layers of the policy and value networks."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    address: str | None = None
    """Ray cluster address (``"HEAD:6379"``); ``None`` starts (or uses) a local cluster."""

    @classmethod
    def quick(cls) -> Config:
        """The contextual bandit, k in {1, 2}, every method: 6 runs of 3,000 trained env steps, 30-50 s each on
        this 2-core machine under a load of 8-9 (most of it the env runners' start-up), 3-5 minutes in all.
        The time cap (600 s) is a guard, not the budget: with two sweeps beside it, the start-up alone
        once took over 90 s, and a run cut there had trained nothing."""
        return cls(tasks=("bandit",), env_runners=(1, 2), total_env_steps=3_000, max_seconds=600.0,
                   learning_rate=2e-3, hidden=(64, 64))


def check_config(config: Config) -> None:
    """Every setting checked before any run (``ValueError`` naming it)."""
    for task in config.tasks:
        if task not in TASKS:
            raise ValueError(f"tasks must be among {sorted(TASKS)}, got {task!r}")
    for method in config.methods:
        if method not in config.method_settings:
            raise ValueError(f"methods must be keys of method_settings {sorted(config.method_settings)}, got {method!r}")
        algorithm = config.method_settings[method].get("algorithm")
        if algorithm not in ("APPO", "DGAPPO"):
            raise ValueError(f"algorithm must be one of ['APPO', 'DGAPPO'], got {algorithm!r} (method {method!r})")
    if not config.env_runners:
        raise ValueError("env_runners must hold at least one number")
    for k in config.env_runners:
        check_int(k, "env_runners", low=1)
    check_int(config.envs_per_env_runner, "envs_per_env_runner", low=1)
    check_real(config.bug, "bug", low=0.0, high=1.0)
    check_real(config.reward_corruption, "reward_corruption", low=0.0, high=1.0)
    check_int(config.total_env_steps, "total_env_steps", low=1)
    check_real(config.max_seconds, "max_seconds", low=0.0, low_open=True)
    check_int(config.train_batch_size, "train_batch_size", low=1)
    check_real(config.learning_rate, "learning_rate", low=0.0, low_open=True)


def grid(config: Config) -> list[dict[str, Any]]:
    """The runs: every (task, method, k, seed); a multi-step task's settings hold its :data:`ANSWER_FRICTIONS`."""
    def settings(task: str, method: str) -> dict[str, Any]:
        answer = {"answer_frictions": ANSWER_FRICTIONS[task]} if task in ANSWER_FRICTIONS else {}
        return {**config.method_settings[method], **answer}

    return [{"task": t, "method": m, "env_runners": k, "seed": s, "settings": settings(t, m)}
            for t in config.tasks for m in config.methods for k in config.env_runners for s in config.seeds]


def friction_settings(config: Config, task: str) -> dict[str, Any]:
    """The :func:`~dg_envs.wrappers.apply_frictions` arguments of ``task``'s runs.

    >>> from dg_envs.experiments import distributed as d
    >>> d.friction_settings(d.Config(), "mnist")
    {'bug': {'p': 0.1}, 'reward_corruption': {'p': 0.1}}
    >>> d.friction_settings(d.Config(), "token-reversal")["reward_corruption"]
    {'p': 0.1, 'per': 'episode', 'terminal_only': True}
    """
    answer = ANSWER_FRICTIONS.get(task, {})
    return {name: {"p": p, **answer.get(name, {})}
            for name, p in (("bug", config.bug), ("reward_corruption", config.reward_corruption))}


def _import_ray():
    try:
        import ray
        import ray.rllib  # noqa: F401
    except ImportError as error:
        raise ImportError('the distributed experiment needs Ray RLlib: pip install "dg-envs[rllib]"') from error
    return ray


def ensure_ray(address: str | None, env_runners: int) -> bool:
    """Connect to ``address`` (or start a local cluster) unless Ray is up; True if this call started it.

    A cluster with fewer CPUs than ``env_runners`` would leave the runners waiting for ever:
    ``ValueError`` instead.
    """
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=max(os.cpu_count() or 1, env_runners), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < env_runners:
        raise ValueError(f"env_runners={env_runners} needs as many CPUs in the Ray cluster, which has {cpus:g}")
    return started


def build_algo(config: Config, job: dict):
    """The RLlib algorithm of one grid point (APPO or DG-APPO), frictions on, the learner in this process."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    from dg_envs.rllib import APPOLagTorchLearner, DGAPPOConfig, register_env

    settings = dict(job["settings"])
    algorithm = settings.pop("algorithm")
    settings.pop("answer_frictions", None)  # (in friction_settings: the job holds it for its key)
    env_id, env_kwargs = TASKS[job["task"]]
    frictions = friction_settings(config, job["task"])
    name = register_env(f"dg-distributed-{job['task']}", env_id, frictions=frictions, **env_kwargs)
    if algorithm == "APPO":
        settings["learner_class"] = APPOLagTorchLearner
    algo_config = DGAPPOConfig()  # (it adds ExecutedActionCallback)
    runners: dict[str, Any] = {}
    if job["task"] == "token-reversal":  # MultiDiscrete observations: one-hot, as gym.spaces.flatten
        from ray.rllib.connectors.env_to_module import FlattenObservations

        runners["env_to_module_connector"] = lambda env, spaces=None, device=None: FlattenObservations()
    return (
        algo_config.environment(name)
        .env_runners(num_env_runners=job["env_runners"], num_envs_per_env_runner=config.envs_per_env_runner, **runners)
        .learners(num_learners=0)  # the learner in the driver: every cluster CPU for the env runners
        .training(lr=config.learning_rate, train_batch_size_per_learner=config.train_batch_size, **settings)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(config.hidden)))
        .reporting(min_time_s_per_iteration=1)
        .debugging(seed=job["seed"])
        .build_algo()
    )


class _GreedyModule:
    """An RLModule as the evaluators of :mod:`dg_envs.experiments.training` call a model: ``predict``."""

    def __init__(self, module: Any, observation_space: Any = None) -> None:
        self.module, self.space = module, observation_space

    def predict(self, obs: np.ndarray, deterministic: bool = True):
        import gymnasium as gym
        import torch

        if self.space is not None:  # MultiDiscrete: the one-hot encoding the env-to-module connector made
            obs = np.stack([gym.spaces.flatten(self.space, o) for o in obs])
        obs = np.array(obs, dtype=np.float32)  # a copy: MNIST's cached images are read-only
        with torch.no_grad():
            logits = self.module.forward_inference({"obs": torch.from_numpy(obs)})
        return logits["action_dist_inputs"].argmax(-1).numpy(), None


def greedy_error(task: str, module: Any) -> float:
    """The greedy policy's error on clean data (no frictions)."""
    import gymnasium as gym

    import dg_envs  # noqa: F401
    from dg_envs.experiments.training import classification_error, sequence_error

    env_id, env_kwargs = TASKS[task]
    if task == "bandit":
        bandit = gym.make(env_id, **env_kwargs).unwrapped
        evaluate = classification_error(np.eye(bandit.n_contexts, dtype=np.float32), bandit.correct_arms)
        return evaluate(_GreedyModule(module))
    if task == "mnist":
        from dg_envs.envs.mnist import load_mnist

        return classification_error(*load_mnist("test"))(_GreedyModule(module))
    space = gym.make(env_id, **env_kwargs).observation_space
    return sequence_error(env_kwargs)(_GreedyModule(module, space))


def run_job(job: dict, config: Config) -> dict:
    """Train one grid point on Ray; its greedy error, policy lag, throughput and cost."""
    # The sweep's largest k, not this job's: the first job starts the local cluster, and one
    # sized for k=1 would refuse the k=4 jobs after it (measured: "needs as many CPUs ... has 2").
    ensure_ray(config.address, max(config.env_runners))
    start = time.perf_counter()
    algo = build_algo(config, job)
    setup_seconds = time.perf_counter() - start
    lag_means, lag_max, trained, returns = [], 0.0, 0, []
    marks = []  # (time, env steps sampled, learner updates) after each iteration that sampled
    train_start = time.perf_counter()
    try:
        learner = algo.learner_group._learner  # num_learners=0: the learner lives in this process
        while trained < config.total_env_steps and time.perf_counter() - train_start < config.max_seconds:
            result = algo.train()
            results = result.get("learners", {})
            trained = int(np.nan_to_num(results.get("__all_modules__", {}).get("num_env_steps_trained_lifetime", 0)))
            sampled = int(np.nan_to_num(result.get("env_runners", {}).get("num_env_steps_sampled_lifetime", 0)))
            if sampled:
                # learner._weights_seq_no counts update() calls (dg_envs.rllib.learners)
                marks.append((time.perf_counter(), sampled, int(learner._weights_seq_no)))
            module = results.get(MODULE, {})
            lag = module.get("policy_lag_mean", np.nan)
            if not np.isnan(lag):  # nan: no learner update in this iteration (APPO's first ones)
                lag_means.append(float(lag))
                lag_max = max(lag_max, float(module.get("policy_lag_max", 0.0)))
            returns.append(float(result.get("env_runners", {}).get("episode_return_mean", np.nan)))
        train_seconds = time.perf_counter() - train_start
        error = greedy_error(job["task"], learner.module[MODULE])
    finally:
        algo.stop()
    # Throughput from the first iteration that sampled on (the env runners' start-up left out).
    (t0, sampled0, updates0), (t1, sampled, updates) = (marks[0], marks[-1]) if marks else ((0, 0, 0),) * 2
    seconds = t1 - t0
    return {"error": error, "policy_lag_mean": float(np.mean(lag_means)) if lag_means else float("nan"),
            "policy_lag_max": lag_max, "policy_lag_iteration_means": lag_means,
            "env_steps_per_second": (sampled - sampled0) / seconds if seconds > 0 else float("nan"),
            "updates_per_second": (updates - updates0) / seconds if seconds > 0 else float("nan"),
            "env_steps_sampled": sampled, "env_steps_trained": trained, "updates": updates,
            "train_seconds": train_seconds, "setup_seconds": setup_seconds,
            "training_return_curve": returns}


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """Every grid point, one after another (each run is itself parallel: k env runners); resumed from ``out_dir``."""
    check_config(config)
    ray = _import_ray()
    started = not ray.is_initialized()
    try:
        work = partial(run_job, config=config)
        return run_sweep(NAME, config, grid(config), work, out_dir, GRID_FIELDS, progress=progress)
    finally:
        if started and ray.is_initialized():
            ray.shutdown()


def _values(records: list[dict], task: str, method: str, k: int, key: str) -> list[float]:
    return [r[key] for r in records if r["task"] == task and r["method"] == method and r["env_runners"] == k]


def _friction_notes(records: list[dict]) -> str:
    """Which multi-step tasks' records had their frictions per step (before :data:`ANSWER_FRICTIONS`).

    >>> print(_friction_notes([{"task": "token-reversal", "settings": {"algorithm": "APPO"}}]))  # doctest: +ELLIPSIS
    <BLANKLINE>
    <BLANKLINE>
    **token-reversal: frictions per step** in 1 of its 1 records (made before they acted per answer): ...
    """
    notes = []
    for task in ANSWER_FRICTIONS:
        rows = [r for r in records if r["task"] == task]
        per_step = [r for r in rows if "answer_frictions" not in r.get("settings", {})]
        if per_step:
            notes.append(f"**{task}: frictions per step** in {len(per_step)} of its {len(rows)} records (made before "
                         "they acted per answer): the landmine hit single tokens and the coin replaced every step's "
                         "reward, the zero rewards before the answer's end included.")
    return "".join(f"\n\n{note}" for note in notes)


def analyse(records: list[dict], out_dir: Path) -> str:
    """Per task: error, lag and throughput vs k for each method; the figure (error, lag, env steps/s vs k; lag histogram)."""
    tasks = list(dict.fromkeys(r["task"] for r in records))
    methods = list(dict.fromkeys(r["method"] for r in records))
    ks = sorted({r["env_runners"] for r in records})
    header = ["task", "method", "k env runners", "greedy error", "policy lag mean", "policy lag max",
              "env steps/s", "learner updates/s", "wall s"]
    rows = []
    for t in tasks:
        for m in methods:
            for k in ks:
                if not _values(records, t, m, k, "error"):
                    continue
                cell = partial(_values, records, t, m, k)
                rows.append([t, m, k, format_mean_spread(cell("error")), format_mean_spread(cell("policy_lag_mean")),
                             f"{max(cell('policy_lag_max')):g}", format_mean_spread(cell("env_steps_per_second"), ".0f"),
                             format_mean_spread(cell("updates_per_second"), ".3g"),
                             format_mean_spread(cell("wall_seconds"), ".0f")])
    table = markdown_table(header, rows)
    text = (f"RLlib APPO (V-trace) vs DG-APPO with and without V-trace on asynchronous env runners, "
            f"buggy actor and reward corruption on. Greedy error on clean data; policy lag in learner "
            f"updates (mean of the per-iteration means, max over the run); mean ± std over seeds.\n\n{table}"
            f"{_friction_notes(records)}")

    fig, (ax_err, ax_lag, ax_speed, ax_hist) = new_figure(ncols=4, width=4.0)
    for t in tasks:
        for m in methods:
            have = [k for k in ks if _values(records, t, m, k, "error")]
            label = f"{t}: {m}" if len(tasks) > 1 else m
            ax_err.plot(have, [np.mean(_values(records, t, m, k, "error")) for k in have], marker="o", label=label)
            ax_lag.plot(have, [np.mean(_values(records, t, m, k, "policy_lag_mean")) for k in have], marker="o",
                        label=label)
            ax_speed.plot(have, [np.mean(_values(records, t, m, k, "env_steps_per_second")) for k in have],
                          marker="o", label=label)
    for k in ks:
        lags = [x for r in records if r["env_runners"] == k for x in r["policy_lag_iteration_means"]]
        if lags:
            ax_hist.hist(lags, bins=20, alpha=0.5, label=f"k={k}")
    for ax, ylabel, title in ((ax_err, "greedy error", "final error"), (ax_lag, "mean policy lag (updates)", "lag"),
                              (ax_speed, "env steps / s", "sampling throughput")):
        ax.set_xlabel("k env runners")
        ax.set_xticks(ks)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6)
    ax_hist.set_xlabel("per-iteration mean policy lag (updates)")
    ax_hist.set_ylabel("iterations")
    ax_hist.set_title("lag distribution (all methods)", fontsize=9)
    ax_hist.legend(fontsize=6)
    return write_page(out_dir, NAME, text, fig)
