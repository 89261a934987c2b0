"""The reference code's algorithms as SB3 algorithms: one Adam step per batch, group baseline, no critic.

The papers' reference code (google-deepmind/egg release, commit ``d005eac``) trains on
batches of 10 prompts x 10 samples: advantage = sequence reward minus the mean reward of
the same prompt's samples, on every answer token, unnormalised; one Adam step (lr 3e-4,
optax defaults: betas (0.9, 0.999), eps 1e-8, no gradient clipping) per batch
(``egg/learners.py``, ``egg/trainers/vanilla_async.py``). Here a batch is one rollout of SB3's
VecEnv (``n_steps`` x ``n_envs`` samples, a sample = one token), the group baseline is
:class:`~dg_envs.algos.group.GroupBaselineRolloutBuffer`, and each algorithm differs only in
its pure loss (:mod:`dg_envs.algos.losses`):

=======================  ===================================================================
class                    loss (reference file)
=======================  ===================================================================
``DGPG``                 DG-weighted REINFORCE, gate ``sigmoid((chi - price) / eta)``, no
                         ratio (``dg.py``)
``ReportedRatioPG``      the reference's "REINFORCE": PPO's surrogate with clip ``1e9``, i.e.
                         ``A * pi / mu_reported`` (``run.py``: ``loss="reinforce"``)
``ReportedRatioPPO``     PPO's clipped surrogate against ``mu_reported`` (``ppo.py``)
``PMPO``                 accept/reject by the sign of the advantage + KL to the sampler
                         (``pmpo.py``)
``KondoPG``              top-k by delight, survivors weighted 1, divided by all N (``kondo.py``);
                         only kept samples go through the differentiable forward/backward
``CrossEntropyOracle``   supervised cross-entropy on the env's ``optimal_action()`` (``xent.py``)
=======================  ===================================================================

Shared by all (:class:`ReferencePolicyGradient`): trained on the *executed* action
(:class:`~dg_envs.algos.ExecutedActionMixin`), ``mu_reported`` =
``BehaviorRolloutBuffer.behavior_log_probs`` (what the actor reported; a lying actor
reports 0), policy snapshots pushed to stale/mismatched actors at learn start and after
every update. ``n_steps`` defaults to one episode (the env's ``episode_length``),
``group_size`` to the env's. The policy is SB3's ``ActorCriticPolicy``; its value head is
never trained (log-probs come from ``policy.get_distribution``, which does not run it; it
only costs SB3 one small forward per rollout step). Discrete and MultiDiscrete actions.

>>> import dg_envs
>>> from dg_envs.vec_env import make_vec_env
>>> venv = make_vec_env("dg_envs/TokenReversal-v0", n_envs=20, seed=0, env_kwargs=dict(length=3, group_size=10))
>>> model = DGPG("MlpPolicy", venv, seed=0)
>>> model.n_steps, model.rollout_buffer.group_size, model.policy.optimizer.defaults["eps"]
(3, 10, 1e-08)
>>> _ = model.learn(120)
>>> 0.0 < model.logger.name_to_value["train/gate_mean"] < 1.0
True
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, BasePolicy
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from dg_envs.algos.group import GroupBaselineRolloutBuffer, group_size_of
from dg_envs.algos.losses import (
    LossOutput, cross_entropy_loss, dg_loss, episode_sum, kondo_keep, kondo_loss, pmpo_loss, ppo_loss, reinforce_loss,
)
from dg_envs.algos.relabel import BehaviorRolloutBuffer, ExecutedActionMixin, episode_ids
from dg_envs.algos.transformer import whole_answer_log_prob
from dg_envs.algos.weighting import push_snapshot
from dg_envs.validation import check_choice, check_int, check_real

#: Whose surprisal the DG / Kondo gate reads (``surprisal=``): each step's own (the reference's
#: token gate) or its whole episode's (``-log pi`` of the answer).
SURPRISALS = ("step", "episode")

__all__ = [
    "DGPG", "PMPO", "CrossEntropyOracle", "KondoPG", "ReferencePolicyGradient", "ReportedRatioPG", "ReportedRatioPPO",
]


class ReferencePolicyGradient(ExecutedActionMixin, OnPolicyAlgorithm):
    """Base: per rollout, evaluate the whole buffer once, apply the class's pure loss, one optimiser step.

    :param policy: ``"MlpPolicy"``/``"CnnPolicy"`` or an ``ActorCriticPolicy`` class.
    :param env: a VecEnv (or env / id) whose groups of ``group_size`` consecutive sub-envs share a prompt.
    :param learning_rate: Adam's learning rate (the reference's 3e-4), or a schedule.
    :param n_steps: steps per sub-env per update; a multiple of the episode length (default:
        one episode, the env's ``episode_length``).
    :param group_size: sub-envs per group for the baseline (default: the env's ``group_size``;
        ``n_envs`` gives the batch-mean baseline).
    :param max_grad_norm: clip the gradient norm (default None: no clipping, as the reference).
    :param policy_kwargs: as SB3's; Adam's ``eps`` defaults to 1e-8 (optax's; SB3 uses 1e-5).
    Other arguments: as :class:`stable_baselines3.common.on_policy_algorithm.OnPolicyAlgorithm`.
    The discount is 1 (sequence reward); there is no entropy bonus and no value loss.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": ActorCriticPolicy, "CnnPolicy": ActorCriticCnnPolicy,
    }
    #: Whether the loss reads the group-baselined advantage (CE does not).
    uses_group_baseline: ClassVar[bool] = True

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: Any,
        learning_rate: float | Any = 3e-4,
        n_steps: int | None = None,
        group_size: int | None = None,
        max_grad_norm: float | None = None,
        rollout_buffer_class: type[BehaviorRolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if n_steps is not None:
            n_steps = check_int(n_steps, "n_steps", low=1)
        if group_size is not None:
            group_size = check_int(group_size, "group_size", low=1)
        if max_grad_norm is not None:
            max_grad_norm = check_real(max_grad_norm, "max_grad_norm", low=0.0, low_open=True)
        policy_kwargs = dict(policy_kwargs or {})
        if policy_kwargs.get("optimizer_class", th.optim.Adam) is th.optim.Adam:
            policy_kwargs["optimizer_kwargs"] = {"eps": 1e-8, **(policy_kwargs.get("optimizer_kwargs") or {})}
        self.group_size = group_size
        super().__init__(
            policy, env, learning_rate=learning_rate, n_steps=n_steps,  # type: ignore[arg-type]
            gamma=1.0, gae_lambda=1.0, ent_coef=0.0, vf_coef=0.0,
            max_grad_norm=max_grad_norm, use_sde=False, sde_sample_freq=-1,  # type: ignore[arg-type]
            rollout_buffer_class=rollout_buffer_class, rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size, tensorboard_log=tensorboard_log, policy_kwargs=policy_kwargs,
            verbose=verbose, seed=seed, device=device, _init_setup_model=False,
            supported_action_spaces=(spaces.Discrete, spaces.MultiDiscrete),
        )
        if _init_setup_model:
            self._setup_model()

    # -- set-up -------------------------------------------------------------------------------
    def _setup_model(self) -> None:
        if self.n_steps is None:
            try:
                length = self.env.get_attr("episode_length")[0]  # type: ignore[union-attr]
            except AttributeError:
                raise ValueError(
                    f"{type(self.env).__name__} has no episode_length attribute: pass n_steps (a multiple of the "
                    "episode length)"
                ) from None
            self.n_steps = check_int(length, "episode_length", low=1)
        if self.uses_group_baseline:
            if self.rollout_buffer_class is None:
                self.rollout_buffer_class = GroupBaselineRolloutBuffer
            kwargs = dict(self.rollout_buffer_kwargs)
            if issubclass(self.rollout_buffer_class, GroupBaselineRolloutBuffer):
                given = kwargs.get("group_size")
                if self.group_size is not None and given is not None and given != self.group_size:
                    raise ValueError(f"group_size={self.group_size} but rollout_buffer_kwargs has group_size={given}")
                if given is None:
                    kwargs["group_size"] = self.group_size if self.group_size is not None else group_size_of(self.env)
                self.group_size = kwargs["group_size"]
            self.rollout_buffer_kwargs = kwargs
        super()._setup_model()

    def _setup_learn(self, *args: Any, **kwargs: Any):
        out = super()._setup_learn(*args, **kwargs)
        self.snapshot_envs = push_snapshot(self.env, self.policy)
        return out

    # -- the loss -----------------------------------------------------------------------------
    def _policy_actions(self, actions: th.Tensor) -> th.Tensor:
        return actions.long().flatten() if isinstance(self.action_space, spaces.Discrete) else actions.long()

    def _log_prob(self, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """``log pi(a|s)`` from the actor alone (the value head is not evaluated)."""
        return self.policy.get_distribution(observations).log_prob(actions)

    def _rollout_log_prob(self, batch: Any) -> th.Tensor:
        """``log pi`` of every sample of the whole, unshuffled rollout (``BehaviorRolloutBuffer.whole``).

        Token reversal with the reference transformer (``readout="previous"``): one pass per
        answer instead of one per token (:func:`~dg_envs.algos.transformer.whole_answer_log_prob`);
        otherwise sample by sample.
        """
        obs, actions = batch.observations, self._policy_actions(batch.actions)
        length = getattr(self.policy.pi_features_extractor, "length", None)
        if isinstance(obs, th.Tensor) and isinstance(length, int) and self.n_steps % length == 0:
            per_answer = whole_answer_log_prob(
                self.policy, obs.reshape(-1, length, *obs.shape[1:]), actions.reshape(-1, length)
            )
            if per_answer is not None:
                return per_answer
        return self._log_prob(obs, actions)

    def _loss(self, log_prob: th.Tensor, batch: Any) -> LossOutput:
        """The class's pure loss on the whole batch."""
        raise NotImplementedError

    def _gate_surprisal(self, log_prob: th.Tensor, surprisal: str) -> th.Tensor | None:
        """The surprisal a gate reads for ``surprisal`` (:data:`SURPRISALS`): None (each sample's
        own ``-log pi``) or, for ``"episode"``, every step's episode total (of the whole rollout)."""
        if surprisal == "step":
            return None
        ids = th.as_tensor(episode_ids(self.rollout_buffer.episode_starts), device=log_prob.device)
        return episode_sum(-log_prob.detach(), ids)

    def _policy_loss(self, batch: Any) -> tuple[LossOutput, th.Tensor, int]:
        """(loss, detached log-probs of all samples, samples through the backward pass)."""
        log_prob = self._rollout_log_prob(batch)
        return self._loss(log_prob, batch), log_prob.detach(), len(log_prob)

    # -- SB3 ----------------------------------------------------------------------------------
    def train(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        batch = self.rollout_buffer.whole()  # the whole rollout, once, in step order
        out, log_prob, backward = self._policy_loss(batch)
        self.policy.optimizer.zero_grad()
        out.loss.backward()
        if self.max_grad_norm is not None:
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        self._n_updates += 1
        stats = {"surprisal_mean": (-log_prob).mean(), "kondo_kept_fraction": 1.0, "kondo_backward_samples": backward}
        if self.uses_group_baseline:
            stats["delight_mean"] = (batch.advantages * -log_prob).mean()
        stats.update(out.stats)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(out.loss.detach()))
        for key, value in stats.items():
            self.logger.record(f"train/{key}", float(value))
        self.snapshot_envs = push_snapshot(self.env, self.policy)


class DGPG(ReferencePolicyGradient):
    """DG-weighted REINFORCE as the reference runs it (``egg/losses/dg.py``; arXiv 2603.14608).

    Gradient ``-mean(w * A * grad log pi)``, ``w = sigmoid((A * (-log pi) - price) / eta)``
    under the current learner; the reported behaviour probability is never read.

    :param eta: gate temperature (>= 0; 0 is the hard gate ``1{chi > price}``), in units of
        the raw group-baselined advantage.
    :param price: the gate's threshold ``lambda`` (the reference's ``lambda_learn``, default 0).
    :param surprisal: ``"step"`` (default, the reference's token gate: each token's own
        ``-log pi``) or ``"episode"`` (every token gated by its whole answer's surprisal,
        ``-log pi(answer | prompt)``: an injected answer that is surprising as a whole and
        worse than its group is gated out on *all* its tokens, the unsurprising ones included;
        see ``docs/results/README.md``, token reversal under the landmine bug).
    Other arguments: as :class:`ReferencePolicyGradient`.
    """

    def __init__(
        self, *args: Any, eta: float = 1.0, price: float = 0.0, surprisal: str = "step", **kwargs: Any
    ) -> None:
        self.eta = check_real(eta, "eta", low=0.0, allow_inf=True)
        self.price = check_real(price, "price")
        self.surprisal = check_choice(surprisal, "surprisal", SURPRISALS)
        super().__init__(*args, **kwargs)

    def _loss(self, log_prob, batch):
        return dg_loss(log_prob, batch.advantages, eta=self.eta, price=self.price,
                       surprisal=self._gate_surprisal(log_prob, self.surprisal))


class ReportedRatioPG(ReferencePolicyGradient):
    """The reference's "REINFORCE": PPO's surrogate with clip 1e9 against the *reported* behaviour probability.

    Gradient ``-mean(A * pi / mu_reported * grad log pi)`` (``experiments/dpg/run.py``,
    ``loss="reinforce"`` builds ``egg/losses/ppo.py`` with ``clip_epsilon=1e9``). Named for
    what it computes: the ratio is against what the actor *reported*, so an actor that lies
    (reports probability 1) gets ``A * pi`` on its injected samples.
    Other arguments: as :class:`ReferencePolicyGradient`.
    """

    def _loss(self, log_prob, batch):
        return reinforce_loss(log_prob, batch.behavior_log_prob, batch.advantages)


class ReportedRatioPPO(ReferencePolicyGradient):
    """PPO's clipped surrogate against the reported behaviour probability, one step per batch (``egg/losses/ppo.py``).

    :param clip_range: ``epsilon`` (the reference loss's default 0.2; note its launcher
        passes ``loss_param_one``, default 1).
    Other arguments: as :class:`ReferencePolicyGradient`.
    """

    def __init__(self, *args: Any, clip_range: float = 0.2, **kwargs: Any) -> None:
        self.clip_range = check_real(clip_range, "clip_range", low=0.0, low_open=True)  # type: ignore[assignment]
        super().__init__(*args, **kwargs)

    def _loss(self, log_prob, batch):
        return ppo_loss(log_prob, batch.behavior_log_prob, batch.advantages, self.clip_range)  # type: ignore[arg-type]


class PMPO(ReferencePolicyGradient):
    """Token-level PMPO (``egg/losses/pmpo.py``; Abdolmaleki et al. 2024).

    :param alpha: weight of the accepted samples' ``-log pi`` (``1 - alpha``: the rejected ones'
        ``log(reject_floor + pi)``), default 0.5.
    :param beta: weight of the KL estimate to the sampler ``mean(log mu_reported - log pi)``, default 0.1.
    :param reject_floor: the reference's ``gamma`` (default 1e-9), which bounds the push-down of
        rejected samples (named apart from SB3's discount ``gamma``).
    Other arguments: as :class:`ReferencePolicyGradient`.
    """

    def __init__(
        self, *args: Any, alpha: float = 0.5, beta: float = 0.1, reject_floor: float = 1e-9, **kwargs: Any
    ) -> None:
        self.alpha = check_real(alpha, "alpha", low=0.0, high=1.0)
        self.beta = check_real(beta, "beta", low=0.0)
        self.reject_floor = check_real(reject_floor, "reject_floor", low=0.0)
        super().__init__(*args, **kwargs)

    def _loss(self, log_prob, batch):
        return pmpo_loss(log_prob, batch.behavior_log_prob, batch.advantages, self.alpha, self.beta, self.reject_floor)


class KondoPG(ReferencePolicyGradient):
    """REINFORCE through the reference Kondo gate (``egg/losses/kondo.py``; arXiv 2603.20526).

    A forward pass without gradients scores every sample's delight; the top
    ``max(1, round(keep_fraction * N))`` (ties at the k-th value kept) get weight 1, the rest
    0, and the sum is divided by all ``N``. Unlike the reference, which masks the loss but runs
    the full backward, only the kept samples go through the differentiable forward and the
    backward (``train/kondo_backward_samples``); the gradient is the same.

    :param keep_fraction: ``rho`` in (0, 1] (default 0.03, the papers' 3%; the reference
        loss's default 1.0 keeps everything).
    :param surprisal: as :class:`DGPG`'s (``"episode"``: whole answers are ranked, and kept
        or skipped together).
    Other arguments: as :class:`ReferencePolicyGradient`.
    """

    def __init__(self, *args: Any, keep_fraction: float = 0.03, surprisal: str = "step", **kwargs: Any) -> None:
        self.keep_fraction = check_real(keep_fraction, "keep_fraction", low=0.0, low_open=True, high=1.0)
        self.surprisal = check_choice(surprisal, "surprisal", SURPRISALS)
        super().__init__(*args, **kwargs)

    def _policy_loss(self, batch):
        obs, actions = batch.observations, self._policy_actions(batch.actions)
        with th.no_grad():
            screened = self._rollout_log_prob(batch)
        surprisal = self._gate_surprisal(screened, self.surprisal)
        keep = kondo_keep(batch.advantages, screened, self.keep_fraction, surprisal=surprisal)
        idx = keep.nonzero().flatten()
        log_prob = screened.index_put((idx,), self._log_prob(obs[idx], actions[idx]))
        return kondo_loss(log_prob, batch.advantages, keep=keep, surprisal=surprisal), screened, len(idx)


class CrossEntropyOracle(ReferencePolicyGradient):
    """Supervised cross-entropy on the correct action: the DG paper's MNIST oracle (``egg/losses/xent.py``).

    The label of buffer entry ``(t, i)`` is sub-env ``i``'s ``optimal_action()`` just before
    step ``t`` (for MNIST: the current image's label; for token reversal: the next correct
    token), read through ``VecEnv.env_method`` (a batched env answers once for all
    sub-envs). The env still runs the policy's sampled actions, so ``rollout/`` statistics
    are the learner's own; after the rollout the buffer's ``actions`` hold the labels, and the
    loss is ``-mean(log pi(label | s))``. No advantage: ``group_size`` is not needed.
    Other arguments: as :class:`ReferencePolicyGradient`.
    """

    uses_group_baseline = False

    def collect_rollouts(self, env: VecEnv, callback, rollout_buffer, n_rollout_steps: int) -> bool:
        recorder = OptimalActionRecorder(env)
        result = super().collect_rollouts(recorder, callback, rollout_buffer, n_rollout_steps)
        n = rollout_buffer.buffer_size if rollout_buffer.full else rollout_buffer.pos
        labels = np.stack(recorder.labels[:n]).reshape(rollout_buffer.actions[:n].shape)
        rollout_buffer.actions[:n] = labels.astype(rollout_buffer.actions.dtype)
        return result

    def _loss(self, log_prob, batch):
        return cross_entropy_loss(log_prob)


class OptimalActionRecorder(VecEnvWrapper):
    """Records every sub-env's ``optimal_action()`` before each step in ``self.labels`` (one array per step)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.labels: list[np.ndarray] = []

    def reset(self):
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.labels.append(optimal_actions(self.venv))
        self.venv.step_async(actions)

    def step_wait(self):
        return self.venv.step_wait()


def optimal_actions(venv: VecEnv) -> np.ndarray:
    """Every sub-env's ``optimal_action()``, shape ``(n_envs, ...)``.

    A batched env (``dg_envs.vec_env.GymnasiumVecEnv``) returns one array for all sub-envs,
    repeated per index; a ``DummyVecEnv`` one answer per sub-env.
    """
    results = venv.env_method("optimal_action")
    first = np.asarray(results[0])
    if first.shape == (venv.num_envs, *venv.action_space.shape):  # one answer is () or (k,): never this shape
        return first
    return np.stack([np.asarray(r) for r in results])
