"""One training run, as every experiment does it: build the (frictioned) vector env, train, evaluate.

Kept small on purpose: experiments differ in their configs and analyses, not in how a run is made.
The SB3 baselines (``"PPO"``, ``"A2C"``) are :class:`dg_envs.algos.RelabelledPPO` and
:class:`~dg_envs.algos.RelabelledA2C`, found like every algorithm through
:func:`dg_envs.algos.get_algorithm`; :func:`train_run` adds the snapshots their stale actors need.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import dg_envs  # noqa: F401  (registers the environment ids)
from dg_envs.algos.weighting import WeightedPolicyGradientMixin
from dg_envs.callbacks import ActionStdCallback
from dg_envs.wrappers import SnapshotCallback, apply_frictions


@dataclass
class RunSpec:
    """Everything that defines one training run."""

    algo: type
    """The algorithm class: one of :data:`dg_envs.algos.ALGORITHMS` (ours, or SB3's relabelled
    to the executed action), or any SB3 on-policy algorithm."""
    env_id: str
    """A registered Gymnasium id."""
    seed: int
    """Seeds the algorithm, the environments and the frictions."""
    total_updates: int
    """Learner updates (``train()`` calls); timesteps = updates * n_envs * n_steps."""
    n_envs: int = 1
    n_steps: int = 1
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    frictions: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of :func:`dg_envs.wrappers.apply_frictions` (empty: a clean env)."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: str = "MlpPolicy"
    eval_every: int = 0
    """Evaluate every this many updates (0: only at the end)."""
    tensorboard_log: str | None = None
    vectorized: bool = True
    """Where the id has a natively batched env, run it and the frictions batched
    (:func:`dg_envs.vec_env.make_vec_env`: one stale-actor forward per step, one snapshot per
    update); False, or an id without one (MuJoCo): SB3's ``make_vec_env`` of per-env wrappers."""
    std_every: int = 0
    """Record the Gaussian policy's action std (and the DG gates' means) every this many updates,
    at the start and at the end too (0: not recorded; :func:`train_run`'s ``std_curve``)."""


def has_native_vector_env(env_id: str) -> bool:
    """Whether ``env_id`` registers a natively batched ``vector_entry_point`` (all of ours do).

    >>> has_native_vector_env("dg_envs/TokenReversal-v0"), has_native_vector_env("Hopper-v5")
    (True, False)
    """
    return gym.spec(env_id).vector_entry_point is not None


def make_run_env(spec: RunSpec):
    """The SB3 VecEnv of a run: batched (``spec.vectorized`` and a native vector env) or per env."""
    frictions = spec.frictions
    if spec.vectorized and has_native_vector_env(spec.env_id):
        from dg_envs.vec_env import make_vec_env as make_batched_vec_env

        return make_batched_vec_env(spec.env_id, n_envs=spec.n_envs, seed=spec.seed, env_kwargs=spec.env_kwargs,
                                    frictions=frictions or None)

    def wrap(env):
        return apply_frictions(env, **frictions) if frictions else env

    return make_vec_env(spec.env_id, n_envs=spec.n_envs, seed=spec.seed, env_kwargs=spec.env_kwargs, wrapper_class=wrap)


class _PeriodicEval(BaseCallback):
    """Calls ``evaluate(model)`` every ``every`` updates and keeps ``(updates, score)``."""

    def __init__(self, evaluate: Callable, every: int):
        super().__init__()
        self.evaluate, self.every, self.curve, self.updates = evaluate, every, [], 0

    def _on_rollout_end(self) -> None:
        self.updates += 1

    def _on_rollout_start(self) -> None:
        # Called after the previous train(): evaluate the freshly updated policy.
        if self.updates and self.updates % self.every == 0:
            self.curve.append((self.updates, float(self.evaluate(self.model))))

    def _on_step(self) -> bool:
        return True


class _StdCurve(ActionStdCallback):
    """:class:`~dg_envs.callbacks.ActionStdCallback` that also keeps the update's ``train/gate_mean`` and
    ``train/scale_gate_mean`` (None where the algorithm does not log them: PPO, the sample gate's scale).

    SB3 dumps (and clears) the logger before ``train()``, so right after it (the next rollout's
    start, or the end of training) the logger still holds that update's values.
    """

    def __init__(self):
        super().__init__()
        self.gates: list[tuple[int, float | None, float | None]] = []

    def _record(self) -> None:
        before = len(self.curve)
        super()._record()
        if len(self.curve) > before:
            logged = self.model.logger.name_to_value
            gate, scale = logged.get("train/gate_mean"), logged.get("train/scale_gate_mean")
            self.gates.append((self.curve[-1][0], None if gate is None else float(gate),
                               None if scale is None else float(scale)))


def thin_curve(curve: list, every: int) -> list:
    """Every ``every``-th point of ``curve`` and its last one (the curve as recorded every ``every`` updates).

    >>> thin_curve([0, 1, 2, 3, 4, 5, 6], 3)
    [0, 3, 6]
    >>> thin_curve([0, 1, 2, 3, 4], 3)
    [0, 3, 4]
    """
    kept = curve[::every]
    return kept + curve[-1:] if curve and (len(curve) - 1) % every else kept


class _UpdateCost(BaseCallback):
    """Measures what the updates cost: seconds inside ``train()`` and samples that got a backward pass.

    SB3 calls ``on_rollout_end`` right before ``train()`` (and the log dump) and
    ``on_rollout_start`` right after, so the gap between them is the update's time. Samples with
    a backward pass come from our algorithms' ``train/kondo_backward_samples`` log key; for an
    algorithm that does not log it, every sample of the batch gets one.
    """

    def __init__(self):
        super().__init__()
        self.train_seconds, self.backward_samples, self.updates, self._t0 = 0.0, 0, 0, None

    @property
    def in_train(self) -> bool:
        """Whether an update (``train()``) has started and not yet finished."""
        return self._t0 is not None

    def _on_rollout_end(self) -> None:
        self._t0 = time.perf_counter()

    def _on_rollout_start(self) -> None:
        if self._t0 is None:
            return
        self.train_seconds += time.perf_counter() - self._t0
        self._t0 = None
        self.updates += 1
        logged = self.model.logger.name_to_value.get("train/kondo_backward_samples")
        batch = self.model.n_steps * self.model.n_envs
        epochs = getattr(self.model, "n_epochs", 1)
        self.backward_samples += int(logged) if logged is not None else batch * epochs

    def _on_training_end(self) -> None:
        self._on_rollout_start()  # the last update has no following rollout

    def _on_step(self) -> bool:
        return True


def pushes_own_snapshots(algo: type) -> bool:
    """Whether ``algo`` hands its stale/mismatched actors a policy snapshot after every update itself.

    Ours (:class:`~dg_envs.algos.weighting.WeightedPolicyGradientMixin`) and the reference
    methods (:class:`~dg_envs.algos.reference.ReferencePolicyGradient`) do; an SB3 baseline
    needs :class:`~dg_envs.wrappers.SnapshotCallback`. Adding the callback to one that pushes
    would push twice per update and halve the actor's lag in updates.

    >>> from dg_envs.algos import ALGORITHMS
    >>> sorted(name for name, algo in ALGORITHMS.items() if not pushes_own_snapshots(algo))
    ['A2C', 'PPO']
    """
    from dg_envs.algos.reference import ReferencePolicyGradient

    return issubclass(algo, (WeightedPolicyGradientMixin, ReferencePolicyGradient))


def parameters_finite(model) -> bool:
    """Whether every parameter of ``model``'s policy is finite (no NaN or inf: the run has not diverged)."""
    return all(bool(th.isfinite(p).all()) for p in model.policy.parameters())


def train_run(spec: RunSpec, evaluate: Callable[[Any], float], progress_bar: bool = False,
              keep_model: bool = False, diverged_score: float | None = None) -> dict:
    """Train ``spec``; return the final score, the learning curve and what the updates cost.

    Keys: ``final``, ``curve`` (``[(updates, score), ...]``), ``seconds`` (whole ``learn``),
    ``train_seconds`` (inside ``train()``), ``backward_samples`` (summed over updates), and
    ``model`` (the trained model) when ``keep_model``. With ``spec.std_every`` (a diagonal
    Gaussian policy) also ``std_curve`` (``[(timesteps, mean action std), ...]``: before the first
    update, every ``std_every`` updates, after the last), ``gate_curve`` (``[(timesteps,
    train/gate_mean, train/scale_gate_mean), ...]`` at the same points, None where not logged) and
    ``final_std`` (the action std per dimension at the end).

    A run *diverges* when its policy's parameters stop being finite (e.g. SB3's PPO, whose ratio
    ``exp(log pi - log pi_old)`` overflows float32 on an action its rollout policy gave -258
    nats). With ``diverged_score=None`` that raises as before; otherwise training stops there,
    ``final`` is ``diverged_score`` (what the experiment counts a policy that outputs NaN as, e.g.
    sequence error 1.0: it answers nothing) and ``diverged_at`` is the update that left the
    parameters non-finite, counted from 1 (absent from a run that did not diverge), so a sweep
    records the run instead of stopping at it.
    """
    venv = make_run_env(spec)
    model = spec.algo(spec.policy, venv, n_steps=spec.n_steps, seed=spec.seed, verbose=0,
                      tensorboard_log=spec.tensorboard_log, **spec.algo_kwargs)
    cost = _UpdateCost()
    callbacks = [cost]
    if not pushes_own_snapshots(spec.algo):
        # An SB3 baseline does not feed stale/mismatched actors by itself: without snapshots
        # they would pass its own actions through, and the baseline would face no staleness.
        callbacks.append(SnapshotCallback())
    std = _StdCurve() if spec.std_every else None
    if std is not None:
        callbacks.append(std)
    if spec.eval_every:
        callbacks.append(_PeriodicEval(evaluate, spec.eval_every))
    start = time.perf_counter()
    diverged_at = None
    try:
        model.learn(spec.total_updates * spec.n_envs * spec.n_steps, callback=callbacks, progress_bar=progress_bar)
    except (ValueError, RuntimeError):
        # torch's distributions refuse NaN logits; only a policy that is no longer finite counts
        # as diverged, any other error is a bug and propagates.
        if diverged_score is None or parameters_finite(model):
            raise
        diverged_at = cost.updates + cost.in_train  # the update that left NaN parameters behind
    seconds = time.perf_counter() - start
    if diverged_at is None and diverged_score is not None and not parameters_finite(model):
        diverged_at = spec.total_updates  # the last update left NaN parameters behind
    final = float(evaluate(model)) if diverged_at is None else float(diverged_score)
    curve = (callbacks[-1].curve if spec.eval_every else []) + [(spec.total_updates if diverged_at is None
                                                                  else diverged_at, final)]
    venv.close()
    result = {"final": final, "curve": curve, "seconds": seconds, "train_seconds": cost.train_seconds,
              "backward_samples": cost.backward_samples}
    if diverged_at is not None:
        result["diverged_at"] = diverged_at
    if std is not None and std.curve:
        result["std_curve"] = thin_curve([(t, s) for t, s, _ in std.curve], spec.std_every)
        result["gate_curve"] = thin_curve(std.gates, spec.std_every)
        result["final_std"] = std.curve[-1][2]
    return {**result, "model": model} if keep_model else result


def classification_error(images: np.ndarray, labels: np.ndarray) -> Callable[[Any], float]:
    """An evaluator: the greedy policy's error rate on a labelled set (e.g. MNIST test)."""

    def evaluate(model) -> float:
        actions, _ = model.predict(images, deterministic=True)
        return float(np.mean(np.asarray(actions) != labels))

    return evaluate


def sequence_error(env_kwargs: dict[str, Any], episodes: int = 256, seed: int = 10_000) -> Callable[[Any], float]:
    """An evaluator for token reversal: the greedy policy's fraction of imperfect answers.

    Runs ``episodes`` clean episodes in the natively batched env (all episodes last ``length``
    steps, so they finish together) on prompts drawn from ``seed`` (sub-env ``i`` from
    ``seed + i``, as ``SyncVectorEnv`` and SB3's ``make_vec_env`` seed them), disjoint from
    training seeds.
    """

    def evaluate(model) -> float:
        envs = gym.make_vec("dg_envs/TokenReversal-v0", num_envs=episodes, vectorization_mode="vector_entry_point",
                            **env_kwargs)
        obs, _ = envs.reset(seed=seed)
        for _ in range(envs.unwrapped.length):
            actions, _ = model.predict(obs, deterministic=True)
            obs, _, terminated, _, info = envs.step(actions)
        envs.close()
        assert terminated.all() and info["_perfect"].all(), "token-reversal episodes must all end after `length` steps"
        return float(np.mean(~info["perfect"]))

    return evaluate
