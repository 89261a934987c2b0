"""Train on the executed action: relabel SB3's rollout buffer from the wrappers' ``info``.

SB3's ``collect_rollouts`` stores the action the *policy* sampled and never shows ``infos``
to the buffer. When a friction wrapper (``dg_envs.wrappers``) replaced that action, the
environment ran another one, and a vanilla SB3 algorithm silently trains on the wrong
action. :class:`ExecutedActionMixin` fixes that without copying SB3's loop:

1. during ``collect_rollouts`` the VecEnv is wrapped by :class:`InfoRecorder`, which keeps
   every step's ``infos``;
2. after ``super().collect_rollouts(...)``, each buffer entry whose info carries
   ``info["executed_action"]`` (see :mod:`dg_envs.wrappers.protocol`) gets that action, and
   its ``log_probs`` entry is recomputed as the *rollout policy's* log-prob of the executed
   action (one batched ``no_grad`` ``evaluate_actions`` over the relabelled entries only);
3. a :class:`BehaviorRolloutBuffer` also stores the behaviour log-prob ``mu(a|s)``: the
   actor-reported ``info["behavior_log_prob"]`` where a wrapper replaced the action, the
   rollout policy's own log-prob elsewhere (used by ``IWPG``).

Entries without ``executed_action`` are left untouched: Box actions are clipped before
stepping, and replacing them by their clipped version would bias the update.

Non-finite data never trains silently: the mixin raises :class:`NonFiniteError` naming what
was non-finite (reward, observation or advantage), the env and the rollout step, before
``train()`` can change a weight. The cost: one vectorised ``np.isfinite`` over the batch of
observations per vector step (it has to be then: the next action is computed from them) and
one over the buffer's rewards and advantages per rollout, nothing per sample.

Any SB3 on-policy algorithm gets the fix by mixing in (the mixin comes first):

>>> from stable_baselines3 import PPO
>>> class RelabelledPPO(ExecutedActionMixin, PPO):
...     pass
>>> model = RelabelledPPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, n_epochs=1)
>>> _ = model.learn(32)
>>> model.rollout_buffer.behavior_log_probs.shape
(16, 1)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from dg_envs.wrappers.protocol import BEHAVIOR_LOG_PROB, EXECUTED_ACTION

__all__ = [
    "BehaviorRolloutBuffer", "BehaviorRolloutBufferSamples", "ExecutedActionMixin", "InfoRecorder", "NonFiniteError",
    "check_finite", "episode_ids",
]


class NonFiniteError(ValueError):
    """A reward, observation or advantage reaching the learner was NaN or infinite."""


def check_finite(values: Any, what: str, where: str, axes: tuple[str, ...] = ("rollout step", "env")) -> None:
    """Raise :class:`NonFiniteError` if ``values`` (an array or a dict of arrays) holds NaN or inf.

    ``what`` names the quantity ("reward", "observation", "advantage"), ``where`` its origin,
    ``axes`` the meaning of the leading indices (for the first bad entry's position). Integer
    arrays are skipped: they are always finite.

    >>> check_finite(np.array([[0.0, 1.0], [np.nan, 0.0]]), "reward", "the rollout buffer")
    Traceback (most recent call last):
    ...
    dg_envs.algos.relabel.NonFiniteError: non-finite reward in the rollout buffer: nan at rollout step 1, env 0 (1 of 4 entries); the learner's weights were not updated
    """
    if isinstance(values, dict):
        for key, value in values.items():
            check_finite(value, f"{what} {key!r}", where, axes)
        return
    values = np.asarray(values)
    if values.dtype.kind not in "fc" or np.isfinite(values).all():
        return
    bad = np.argwhere(~np.isfinite(values))
    first = tuple(int(i) for i in bad[0])
    at = ", ".join(f"{axis} {i}" for axis, i in zip(axes, first))
    raise NonFiniteError(
        f"non-finite {what} in {where}: {values[first]}{' at ' + at if at else ''} ({len(bad)} of {values.size} "
        "entries); the learner's weights were not updated"
    )


def episode_ids(episode_starts: np.ndarray) -> np.ndarray:
    """An id per episode for every buffer entry, in the order of ``BehaviorRolloutBuffer.whole()``.

    :param episode_starts: ``(n_steps, n_envs)``, 1 where the step is the first of an episode
        (SB3's ``RolloutBuffer.episode_starts``; the rollout's first step counts as a start).
    :return: ``(n_envs * n_steps,)`` int64, entry ``i * n_steps + t`` for sub-env ``i``'s step
        ``t``; two entries share an id exactly when they belong to one episode.

    >>> episode_ids(np.array([[1, 1], [0, 1], [1, 0]]))  # env 0: steps 0-1, then 2; env 1: 0, then 1-2
    array([0, 0, 2, 1, 3, 3])
    """
    starts = np.asarray(episode_starts).astype(bool)
    if starts.ndim != 2:
        raise ValueError(f"episode_starts must have shape (n_steps, n_envs), got {starts.shape}")
    starts = starts.copy()
    starts[0] = True
    n_envs = starts.shape[1]
    ids = (np.cumsum(starts, axis=0) - 1) * n_envs + np.arange(n_envs)
    return ids.T.reshape(-1).astype(np.int64)


class BehaviorRolloutBufferSamples(NamedTuple):
    """SB3's ``RolloutBufferSamples`` plus the behaviour log-prob ``log mu(a|s)``."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    behavior_log_prob: th.Tensor


class BehaviorRolloutBuffer(RolloutBuffer):
    """A ``RolloutBuffer`` that also carries ``behavior_log_probs`` (``log mu(a|s)``).

    Until the mixin fills it, ``behavior_log_probs`` equals ``log_probs`` (no friction:
    the behaviour policy is the rollout policy). Pass as ``rollout_buffer_class``.

    :param whole_episodes: draw minibatches of whole episodes instead of single samples
        (``rollout_buffer_kwargs={"whole_episodes": True}``): ``get(batch_size)`` shuffles the
        rollout's episodes (each in step order; an episode cut by the rollout's start or end
        counts as one) and cuts their concatenation every ``batch_size`` samples. With
        fixed-length episodes, a rollout of whole ones and ``batch_size`` a multiple of the
        length, every minibatch is whole episodes; for token reversal with the reference
        transformer that lets the policy score each answer in one pass
        (:meth:`~dg_envs.algos.transformer.TokenTransformerExtractor.holds_whole_answers`).
        Default False: SB3's shuffle of single samples.
    Other arguments: as SB3's ``RolloutBuffer``.
    """

    behavior_log_probs: np.ndarray

    def __init__(self, *args: Any, whole_episodes: bool = False, **kwargs: Any) -> None:
        if not isinstance(whole_episodes, (bool, np.bool_)):
            raise ValueError(f"whole_episodes must be True or False, got {whole_episodes!r}")
        self.whole_episodes = bool(whole_episodes)
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        self.behavior_log_probs = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.behavior_filled = False
        super().reset()

    def get(self, batch_size: int | None = None):
        if not self.generator_ready:
            if not self.behavior_filled:
                self.behavior_log_probs = self.log_probs.copy()
            self.behavior_log_probs = self.swap_and_flatten(self.behavior_log_probs)
        if not self.whole_episodes:
            yield from super().get(batch_size)
            return
        assert self.full, "the rollout buffer must be full before get()"
        # Episodes in random order, each in step order (entry i * buffer_size + t once flattened).
        _, episode = np.unique(episode_ids(self.episode_starts), return_inverse=True)
        rank = np.random.permutation(int(episode.max()) + 1)[episode]
        indices = np.argsort(rank, kind="stable")
        if not self.generator_ready:
            for name in ("observations", "actions", "values", "log_probs", "advantages", "returns"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])  # as SB3's get()
            self.generator_ready = True
        n = self.buffer_size * self.n_envs
        batch_size = n if batch_size is None else batch_size
        for start in range(0, n, batch_size):
            yield self._get_samples(indices[start : start + batch_size])

    def whole(self) -> BehaviorRolloutBufferSamples:
        """The whole rollout as one batch, unshuffled: entry ``i * buffer_size + t`` is sub-env ``i``'s step ``t``."""
        if not self.generator_ready:
            next(self.get())  # flattens the arrays (drawing get()'s permutation, as a first get() does)
        return self._get_samples(np.arange(self.buffer_size * self.n_envs))

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> BehaviorRolloutBufferSamples:  # type: ignore[override]
        samples = super()._get_samples(batch_inds, env)
        return BehaviorRolloutBufferSamples(*samples, self.to_torch(self.behavior_log_probs[batch_inds].flatten()))


class InfoRecorder(VecEnvWrapper):
    """VecEnv wrapper that keeps the ``infos`` of every ``step`` in ``self.infos`` (a list per step)."""

    def __init__(self, venv: VecEnv):
        super().__init__(venv)
        self.infos: list[list[dict[str, Any]]] = []

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        # Checked now: the policy's next forward runs on them (and would fail inside torch).
        where = f"step {len(self.infos)} of the rollout (from the env)"
        check_finite(obs, "observation", where, axes=("env",))
        for i in np.flatnonzero(dones):
            if "terminal_observation" in infos[i]:
                check_finite(infos[i]["terminal_observation"], f"terminal observation of env {i}", where, axes=())
        self.infos.append(infos)
        return obs, rewards, dones, infos


class ExecutedActionMixin:
    """Mix into an SB3 on-policy algorithm (first in the bases) to train on executed actions.

    Uses :class:`BehaviorRolloutBuffer` unless another ``rollout_buffer_class`` is given.

    After each rollout, ``self.relabelled_fraction`` holds the fraction of the buffer's
    entries that a wrapper replaced (logged as ``rollout/relabelled_fraction``).
    """

    relabelled_fraction: float = 0.0

    def _setup_model(self) -> None:
        # Default buffer: ours, which also keeps behaviour log-probs. Dict observations keep
        # SB3's DictRolloutBuffer (relabelled, but without behaviour log-probs).
        if self.rollout_buffer_class is None and not isinstance(self.observation_space, spaces.Dict):  # type: ignore[has-type]
            self.rollout_buffer_class = BehaviorRolloutBuffer
        super()._setup_model()  # type: ignore[misc]

    def collect_rollouts(self, env: VecEnv, callback, rollout_buffer: RolloutBuffer, n_rollout_steps: int) -> bool:
        check_finite(self._last_obs, "observation", "the env's last reset or step", axes=("env",))  # type: ignore[attr-defined]
        recorder = InfoRecorder(env)
        result = super().collect_rollouts(recorder, callback, rollout_buffer, n_rollout_steps)  # type: ignore[misc]
        # An early stop (callback returned False) records one step more than the buffer holds.
        n_stored = rollout_buffer.buffer_size if rollout_buffer.full else rollout_buffer.pos
        # Rewards first: a non-finite reward also makes the advantages non-finite.
        check_finite(rollout_buffer.rewards[:n_stored], "reward", "the rollout buffer (rewards from the env)")
        check_finite(rollout_buffer.advantages[:n_stored], "advantage",
                     "the rollout buffer (from the value estimates; rewards and observations were finite)")
        relabel_rollout_buffer(self.policy, rollout_buffer, recorder.infos[:n_stored], self.action_space)  # type: ignore[attr-defined]
        self.relabelled_fraction = getattr(rollout_buffer, "_relabelled_fraction", 0.0)
        self.logger.record("rollout/relabelled_fraction", self.relabelled_fraction)  # type: ignore[attr-defined]
        return result


def relabel_rollout_buffer(policy, rollout_buffer: RolloutBuffer, step_infos: list, action_space: spaces.Space) -> int:
    """Write executed actions (and the rollout policy's log-probs of them) into the buffer.

    ``step_infos[t][i]`` is env ``i``'s info at buffer row ``t``. Returns the number of
    relabelled entries. Also fills ``behavior_log_probs`` when the buffer has them.
    """
    # One pass per rollout step, not per entry: this runs on every entry a friction touched
    # (all of them, under a stale actor), so per-entry NumPy calls would cost ~5 us each.
    rows, cols, executed, behaviour = [], [], [], []
    for t, infos in enumerate(step_infos):
        hit = [i for i, info in enumerate(infos) if EXECUTED_ACTION in info]
        if hit:
            rows += [t] * len(hit)
            cols += hit
            executed += [infos[i][EXECUTED_ACTION] for i in hit]
            behaviour += [infos[i].get(BEHAVIOR_LOG_PROB, np.nan) for i in hit]
    has_behaviour = isinstance(rollout_buffer, BehaviorRolloutBuffer)
    if has_behaviour:
        rollout_buffer.behavior_filled = False  # get() copies log_probs unless filled below
    n_total = max(1, len(step_infos) * rollout_buffer.n_envs)
    rollout_buffer._relabelled_fraction = len(rows) / n_total  # type: ignore[attr-defined]
    if not rows:
        return 0
    r, c = np.asarray(rows), np.asarray(cols)
    executed_actions = np.asarray(executed).reshape(len(rows), rollout_buffer.action_dim)
    rollout_buffer.actions[r, c] = executed_actions.astype(rollout_buffer.actions.dtype)
    obs = rollout_buffer.observations
    obs_batch = {k: v[r, c] for k, v in obs.items()} if isinstance(obs, dict) else obs[r, c]
    actions = th.as_tensor(rollout_buffer.actions[r, c], device=policy.device)
    if isinstance(action_space, spaces.Discrete):
        actions = actions.long().flatten()
    with th.no_grad():  # the actor alone (evaluate_actions would also run the critic)
        # Every entry relabelled (a stale actor): whole token-reversal answers in one pass each
        # where the policy allows it; (r, c) then runs over the buffer in (step, env) order.
        log_prob = _whole_answers_log_prob(policy, obs, rollout_buffer.actions, len(step_infos)) \
            if len(rows) == n_total else None
        if log_prob is None:
            log_prob = policy.get_distribution(obs_as_tensor(obs_batch, policy.device)).log_prob(actions)
    new_log_probs = log_prob.flatten().cpu().numpy()
    if has_behaviour:
        behaviour_lp = rollout_buffer.log_probs.copy()
        reported = np.asarray(behaviour, dtype=np.float64)
        # An actor that reported nothing: fall back to the rollout policy's log-prob.
        behaviour_lp[r, c] = np.where(np.isnan(reported), new_log_probs, reported)
        rollout_buffer.behavior_log_probs = behaviour_lp.astype(np.float32)
        rollout_buffer.behavior_filled = True
    rollout_buffer.log_probs[r, c] = new_log_probs
    return len(rows)


def _whole_answers_log_prob(policy, observations: Any, actions: np.ndarray, n_steps: int) -> th.Tensor | None:
    """The rollout policy's log-probs of the first ``n_steps`` buffer rows, ``(n_steps * n_envs,)`` in (step, env)
    order, one pass per whole answer (:func:`~dg_envs.algos.transformer.whole_answer_log_prob`); None where that does
    not apply (then the caller evaluates entry by entry)."""
    from dg_envs.algos.transformer import whole_answer_log_prob

    length = getattr(getattr(policy, "pi_features_extractor", None), "length", None)
    if isinstance(observations, dict) or not isinstance(length, int) or n_steps % length:
        return None
    obs = th.as_tensor(observations[:n_steps], device=policy.device).transpose(0, 1)  # (env, step, ...)
    acts = th.as_tensor(actions[:n_steps], device=policy.device).long().transpose(0, 1)
    n_envs = obs.shape[0]
    log_prob = whole_answer_log_prob(policy, obs.reshape(-1, length, *obs.shape[2:]), acts.reshape(-1, length))
    return None if log_prob is None else log_prob.reshape(n_envs, n_steps).T
