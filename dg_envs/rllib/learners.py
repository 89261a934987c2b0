"""DG and Kondo as RLlib new-API-stack torch Learners: :class:`DGPPOTorchLearner`, :class:`DGAPPOTorchLearner`.

Each sample's surrogate is multiplied by the detached DG gate
``w = dg_gate(A, log pi_theta(a|s), eta)`` (:func:`dg_envs.algos.gates.dg_gate`, arXiv
2603.14608): ``log pi_theta`` from the learner's own ``forward_train`` of the minibatch (the
current learner, never the behaviour policy), ``A`` the advantage the loss uses. Value,
entropy and KL terms are RLlib's.

* **PPO** differs from RLlib's ``PPOTorchLearner`` in one step: the batch's advantages are
  replaced by ``w * A`` before RLlib's own loss runs. The clipped surrogate
  ``min(A r, A clip(r))`` is positively homogeneous in ``A``, so this is exactly
  ``w * min(A r, A clip(r))``. ``A`` is RLlib's GAE advantage, standardised over the train
  batch by its learner connector.
* **APPO**: RLlib computes the V-trace advantages inside its (single) loss function, so
  :meth:`DGAPPOTorchLearner.compute_loss_for_module` holds APPO's loss with the gate in it. With
  the gate forced off it equals ``APPOTorchLearner``'s loss (``tests/rllib``, the guard against
  drift under the pinned Ray). ``vtrace_correction=False`` drops every importance correction
  (see :class:`~dg_envs.rllib.options.DelightOptions`).
* **Kondo** (``keep_fraction`` or ``price``, arXiv 2603.20526). PPO skips for real: each
  minibatch is screened by a ``no_grad`` forward, then RLlib's differentiable forward and
  backward run on the kept samples (plus, with ``kondo_value_samples="uniform"``, a uniform
  sample as large for the critic, whose value gradient alone reaches the critic); RLlib's loss
  then averages over those selected rows, as SB3 averages over the processed ones (our
  ``KondoPPO``'s ``weighting="gate"``). The screening forward is RLlib's ``forward_train``, which
  also runs the critic encoder. APPO: *masked only* — V-trace needs the critic's values along
  whole trajectories and RLlib's APPO module computes policy and critic in one forward, so the
  differentiable forward/backward runs on every sample, the policy term of the screened-out ones
  is multiplied by 0 and the mean is over all samples. Real skipping for APPO is left for later.

Two hooks override private methods of RLlib's ``TorchLearner`` (exact Ray pin, tested): its
per-minibatch ``_uncompiled_update`` (the policy-lag metrics, and Kondo-PPO's selection before
RLlib's differentiable forward) and, for Kondo-PPO's critic sample only, the module's
``compute_values`` shadowed for one loss call.

Policy lag: every sample carries the ``WEIGHTS_SEQ_NO`` of the weights its env runner acted with
(RLlib stamps each step's ``extra_model_outputs``); a learner's sequence number counts its
``update()`` calls. The lag of a sample is ``(learner seq no - 1) - sample seq no``: the number of
learner updates between the weights that acted and the weights being trained (0: on-policy).
RLlib's own ``diff_num_grad_updates_vs_sampler_policy`` is the same quantity plus one.

Metrics, under ``result["learners"][module_id]`` (:data:`METRICS` explains each):
"""

from __future__ import annotations

from typing import Any

import torch
import tree
from gymnasium import spaces
from ray.rllib.algorithms.appo.appo import (
    LEARNER_RESULTS_CURR_KL_COEFF_KEY,
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_MEAN_IS_KEY,
    LEARNER_RESULTS_VAR_IS_KEY,
)
from ray.rllib.algorithms.appo.torch.appo_torch_learner import APPOTorchLearner
from ray.rllib.algorithms.impala.torch.vtrace_torch_v2 import make_time_major, vtrace_torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.models.base import ENCODER_OUT
from ray.rllib.core.rl_module.apis import TARGET_NETWORK_ACTION_DIST_INPUTS
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

from dg_envs.algos.gates import delight, dg_gate, kondo_gate
from dg_envs.algos.weighting import ScaleGradient, surprisal
from dg_envs.rllib.options import DelightOptions

__all__ = [
    "APPOLagTorchLearner", "DGAPPOTorchLearner", "DGPPOTorchLearner", "METRICS", "POLICY_LAG_MAX", "POLICY_LAG_MEAN",
    "POLICY_LAG_STALE_FRACTION", "GATE_MEAN", "DELIGHT_MEAN", "SURPRISAL_MEAN", "KONDO_KEPT_FRACTION",
    "KONDO_BACKWARD_SAMPLES",
]

POLICY_LAG_MEAN = "policy_lag_mean"
POLICY_LAG_MAX = "policy_lag_max"
POLICY_LAG_STALE_FRACTION = "policy_lag_stale_fraction"
GATE_MEAN = "gate_mean"
DELIGHT_MEAN = "delight_mean"
SURPRISAL_MEAN = "surprisal_mean"
KONDO_KEPT_FRACTION = "kondo_kept_fraction"
KONDO_BACKWARD_SAMPLES = "kondo_backward_samples"

#: Metric key -> meaning (the learner results of one training iteration, per module).
METRICS = {
    POLICY_LAG_MEAN: "mean policy lag of the trained samples, in learner updates (0: on-policy)",
    POLICY_LAG_MAX: "largest policy lag among them",
    POLICY_LAG_STALE_FRACTION: "fraction of trained samples with lag >= 1",
    GATE_MEAN: "mean DG gate sigmoid(chi / eta) over the samples in the policy loss (Kondo: kept ones)",
    DELIGHT_MEAN: "mean delight chi = A * l over those samples",
    SURPRISAL_MEAN: "mean surprisal l under the current learner over those samples",
    KONDO_KEPT_FRACTION: "samples in the policy gradient / samples screened (1.0 without Kondo)",
    KONDO_BACKWARD_SAMPLES: "samples through the differentiable forward and backward, per minibatch "
                            "(PPO Kondo: kept + critic sample; otherwise all)",
}
__doc__ += "\n" + "\n".join(f"* ``{key}``: {meaning}." for key, meaning in METRICS.items()) + "\n"

# Columns our Kondo selection adds to a sliced PPO minibatch (rows of the selection).
_POLICY_MASK = "dg_kondo_policy_mask"
_VALUE_MASK = "dg_kondo_value_mask"


def _valid(batch: dict[str, Any], n: int, device: Any) -> torch.Tensor:
    """Boolean rows that count (RLlib's LOSS_MASK: the artificial bootstrap steps do not)."""
    mask = batch.get(Columns.LOSS_MASK)
    return torch.ones(n, dtype=torch.bool, device=device) if mask is None else mask.bool().reshape(n)


class _DelightLearnerMixin:
    """What DG-PPO and DG-APPO share: options, surprisal, policy-lag metrics, gate statistics."""

    delight_options: DelightOptions

    def build(self) -> None:
        super().build()  # type: ignore[misc]
        self.delight_options = DelightOptions.of(self.config)  # type: ignore[attr-defined]

    def _uncompiled_update(self, batch: dict[str, Any], **kwargs: Any):
        # RLlib's one update step on a minibatch: its forward_train, losses, backward, step.
        self._log_policy_lag(batch)  # over every sample of the minibatch (before any Kondo selection)
        return super()._uncompiled_update(self._select_for_backward(batch), **kwargs)  # type: ignore[misc]

    def _select_for_backward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The rows RLlib's differentiable forward and backward run on (all; Kondo-PPO: a selection)."""
        return batch

    def _log_policy_lag(self, batch: dict[str, Any]) -> None:
        for module_id, module_batch in batch.items():
            if WEIGHTS_SEQ_NO not in module_batch:
                continue
            seq = module_batch[WEIGHTS_SEQ_NO]
            # Learner.update() increments the sequence number before its first gradient step.
            lag = (self._weights_seq_no - 1) - seq.reshape(-1).to(torch.float32)  # type: ignore[attr-defined]
            lag = lag[_valid(module_batch, lag.numel(), lag.device)]
            if lag.numel() == 0:
                continue
            log = self.metrics.log_value  # type: ignore[attr-defined]
            log((module_id, POLICY_LAG_MEAN), lag.mean().item(), reduce="mean")
            log((module_id, POLICY_LAG_MAX), lag.max().item(), reduce="max")
            log((module_id, POLICY_LAG_STALE_FRACTION), (lag >= 1).float().mean().item(), reduce="mean")

    def _surprise(self, dist: Any, logp: torch.Tensor, module_id: Any) -> torch.Tensor:
        """Surprisal ``l`` of each action under the current learner (detached)."""
        kind = self.delight_options.surprisal
        space = self.module[module_id].unwrapped().action_space  # type: ignore[attr-defined]
        if kind == "auto":
            kind = "entropy_centered" if isinstance(space, spaces.Box) else "raw"
        entropy = dist.entropy() if kind == "entropy_centered" else None
        action_dim = int(space.shape[0]) if isinstance(space, spaces.Box) and space.shape else 1
        return surprisal(logp, entropy, kind, action_dim)

    def _log_gate_stats(self, module_id: Any, advantages, surprise, gate, where) -> None:
        """Gate, delight and surprisal means over the rows ``where`` (boolean: those in the policy loss)."""
        if not bool(where.any()):
            return
        self.metrics.log_dict(  # type: ignore[attr-defined]
            {
                GATE_MEAN: gate[where].mean().item(),
                DELIGHT_MEAN: delight(advantages, -surprise)[where].mean().item(),
                SURPRISAL_MEAN: surprise[where].mean().item(),
            },
            key=module_id,
            reduce="mean",
        )


def _screening_logits(module: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The action-distribution inputs of ``batch`` for Kondo's screening (call under ``no_grad``).

    RLlib's default PPO module has separate actor and critic encoders, and its ``forward_train``
    runs both: screening needs the actor's only, which halves the screening forward. Any other
    module is screened with its ``forward_train``.
    """
    actor_encoder = getattr(getattr(module, "encoder", None), "actor_encoder", None)
    if actor_encoder is None or not hasattr(module, "pi"):
        return module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    return module.pi(actor_encoder(batch)[ENCODER_OUT])


class DGPPOTorchLearner(_DelightLearnerMixin, PPOTorchLearner):
    """RLlib's PPO torch learner with the DG gate on each sample's clipped surrogate, and Kondo.

    Configure it through :class:`dg_envs.rllib.DGPPOConfig` (``.training(eta=...,
    keep_fraction=...)``): it reads the :class:`~dg_envs.rllib.options.DelightOptions` from there.
    """

    def build(self) -> None:
        super().build()
        if self.delight_options.kondo and self.config.torch_compile_learner:
            raise ValueError("Kondo (keep_fraction / price) slices each minibatch: it cannot run with "
                             "torch_compile_learner=True")

    def _select_for_backward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Kondo: screen each module's minibatch without gradients and keep the selected rows only."""
        opts = self.delight_options
        if not opts.kondo:
            return batch
        selected_batch = {}
        for module_id, module_batch in batch.items():
            module = self.module[module_id].unwrapped()
            if module.is_stateful():
                raise ValueError("Kondo (keep_fraction / price) with a recurrent RLModule is not supported")
            advantages = module_batch[Postprocessing.ADVANTAGES]
            n = advantages.shape[0]
            with torch.no_grad():
                dist = module.get_train_action_dist_cls().from_logits(_screening_logits(module, module_batch))
            surprise = self._surprise(dist, dist.logp(module_batch[Columns.ACTIONS]), module_id)
            valid = _valid(module_batch, n, advantages.device)
            rows = valid.nonzero().flatten()
            keep_valid = kondo_gate(advantages[rows], -surprise[rows], price=opts.price,
                                    keep_fraction=opts.keep_fraction, eta=opts.kondo_eta)
            if not keep_valid.any():  # the differentiable pass needs one sample: the most delightful
                keep_valid[torch.argmax(delight(advantages[rows], -surprise[rows]))] = True
            keep = torch.zeros(n, dtype=torch.bool, device=advantages.device)
            keep[rows[keep_valid]] = True
            if opts.kondo_value_samples == "uniform":
                # Kept samples alone (high delight) would bias the critic upwards.
                value = torch.zeros_like(keep)
                value[rows[torch.randperm(len(rows), device=rows.device)[: int(keep.sum())]]] = True
            else:
                value = keep
            index = (keep | value).nonzero().flatten()
            sliced = {key: tree.map_structure(lambda t: t[index], column) for key, column in module_batch.items()}
            sliced[_POLICY_MASK], sliced[_VALUE_MASK] = keep[index], value[index]
            self.metrics.log_value((module_id, KONDO_BACKWARD_SAMPLES), len(index), reduce="mean")
            self.metrics.log_value((module_id, KONDO_KEPT_FRACTION), int(keep.sum()) / len(rows), reduce="mean")
            selected_batch[module_id] = sliced
        return selected_batch

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        module = self.module[module_id].unwrapped()
        dist = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        surprise = self._surprise(dist, dist.logp(batch[Columns.ACTIONS]).detach(), module_id)
        advantages = batch[Postprocessing.ADVANTAGES]
        gate = dg_gate(advantages, -surprise, eta=self.delight_options.eta)
        valid = _valid(batch, advantages.shape[0], advantages.device)
        policy_mask, value_mask = batch.get(_POLICY_MASK), batch.get(_VALUE_MASK)  # Kondo's selection
        batch = {key: value for key, value in batch.items() if key not in (_POLICY_MASK, _VALUE_MASK)}
        if policy_mask is None:
            self._log_gate_stats(module_id, advantages, surprise, gate, valid)
            self.metrics.log_value((module_id, KONDO_KEPT_FRACTION), 1.0, reduce="mean")
            self.metrics.log_value((module_id, KONDO_BACKWARD_SAMPLES), int(valid.sum()), reduce="mean")
            batch[Postprocessing.ADVANTAGES] = gate * advantages
            return super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        self._log_gate_stats(module_id, advantages, surprise, gate, policy_mask & valid)
        batch[Postprocessing.ADVANTAGES] = gate * advantages * policy_mask
        # The critic's gradient from the value sample only: RLlib's loss computes the values
        # itself, so its module's compute_values is shadowed for this one call.
        compute_values, weights = module.compute_values, value_mask.to(torch.float32)
        module.compute_values = lambda *args, **kwargs: ScaleGradient.apply(compute_values(*args, **kwargs), weights)
        try:
            return super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        finally:
            del module.compute_values


class DGAPPOTorchLearner(_DelightLearnerMixin, APPOTorchLearner):
    """RLlib's APPO torch learner with the DG gate on each sample's policy term; Kondo masked.

    ``vtrace_correction=True``: APPO's loss (V-trace targets and advantages, the clipped
    importance-ratio surrogate against the target network), each sample's surrogate times the
    gate. ``False``: V-trace with ``rho = c = 1`` (n-step returns bootstrapped from the critic,
    no importance weights) for the value targets and the advantages, and the policy term
    ``-mean(w * A * log pi)`` with neither ratio nor clipping: DG without any correction, as in
    the paper. Kondo multiplies the gate by the keep mask (no compute saved, see the module doc).
    Configure it through :class:`dg_envs.rllib.DGAPPOConfig`.
    """

    #: The DG gate on (tests switch it off to compare with ``APPOTorchLearner`` exactly).
    _gated = True

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        opts = self.delight_options
        module = self.module[module_id].unwrapped()
        T = config.get_rollout_fragment_length()
        seq_lens = batch.get("seq_lens")

        def time_major(x):
            return make_time_major(x, trajectory_len=T, recurrent_seq_len=seq_lens)

        loss_mask = batch[Columns.LOSS_MASK].float()
        loss_mask_tm = time_major(loss_mask)
        size_loss_mask = torch.sum(loss_mask)
        values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))

        dist_cls = module.get_train_action_dist_cls()
        target_dist = dist_cls.from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        old_target_dist = dist_cls.from_logits(module.forward_target(batch)[TARGET_NETWORK_ACTION_DIST_INPUTS])
        actions = batch[Columns.ACTIONS]
        old_logp_tm = time_major(old_target_dist.logp(actions))
        behaviour_logp_tm = time_major(batch[Columns.ACTION_LOGP])
        target_logp = target_dist.logp(actions)
        target_logp_tm = time_major(target_logp)
        rewards_tm = time_major(batch[Columns.REWARDS])
        values_tm = time_major(values)
        # As APPO: the next row's first value bootstraps a row (the last row's is never used).
        bootstrap_values = torch.cat([values_tm[0][1:], values_tm[0][0:1]], dim=0)
        discounts_tm = (1.0 - time_major(batch[Columns.TERMINATEDS]).float()) * config.gamma * loss_mask_tm

        correction = opts.vtrace_correction or not self._gated
        vtrace_targets, pg_advantages = vtrace_torch(
            # Without correction: target = behaviour, so rho = c = 1 everywhere.
            target_action_log_probs=old_logp_tm if correction else behaviour_logp_tm,
            behaviour_action_log_probs=behaviour_logp_tm,
            discounts=discounts_tm,
            rewards=rewards_tm,
            values=values_tm,
            bootstrap_values=bootstrap_values,
            clip_pg_rho_threshold=config.vtrace_clip_pg_rho_threshold,
            clip_rho_threshold=config.vtrace_clip_rho_threshold,
        )
        pg_advantages = pg_advantages * loss_mask_tm

        is_ratio = torch.clip(torch.exp(behaviour_logp_tm - old_logp_tm), 0.0, 2.0)
        if self._gated:
            surprise_tm = time_major(self._surprise(target_dist, target_logp.detach(), module_id))
            gate = dg_gate(pg_advantages, -surprise_tm, eta=opts.eta)
            valid = loss_mask_tm.bool()
            where = valid
            if opts.kondo:
                rows = valid.nonzero(as_tuple=True)
                keep_valid = kondo_gate(pg_advantages[rows], -surprise_tm[rows], price=opts.price,
                                        keep_fraction=opts.keep_fraction, eta=opts.kondo_eta)
                keep = torch.zeros_like(valid)
                keep[tuple(r[keep_valid] for r in rows)] = True
                gate = gate * keep
                where = keep
            self._log_gate_stats(module_id, pg_advantages, surprise_tm, gate, where)
            self.metrics.log_value((module_id, KONDO_KEPT_FRACTION), int(where.sum()) / max(1, int(valid.sum())),
                                   reduce="mean")
            self.metrics.log_value((module_id, KONDO_BACKWARD_SAMPLES), int(valid.sum()), reduce="mean")
        else:
            gate = torch.ones_like(pg_advantages)

        if correction:
            logp_ratio = is_ratio * torch.exp(target_logp_tm - behaviour_logp_tm)
            surrogate = torch.minimum(
                pg_advantages * logp_ratio,
                pg_advantages * torch.clip(logp_ratio, 1 - config.clip_param, 1 + config.clip_param),
            )
            if self._gated:  # (gate >= 0: the same as gating the advantage inside min)
                surrogate = gate * surrogate
        else:
            surrogate = gate * pg_advantages.detach() * target_logp_tm

        mean_is_ratio = torch.sum(is_ratio * loss_mask_tm) / size_loss_mask
        var_is_ratio = torch.sum(torch.square(is_ratio - mean_is_ratio) * loss_mask_tm) / size_loss_mask
        if config.use_kl_loss:
            mean_kl_loss = torch.sum(old_target_dist.kl(target_dist) * loss_mask) / size_loss_mask
        else:
            mean_kl_loss = 0.0
        mean_pi_loss = -(torch.sum(surrogate) / size_loss_mask)
        delta = values_tm - vtrace_targets
        mean_vf_loss = 0.5 * torch.sum(torch.pow(delta, 2.0) * loss_mask_tm) / size_loss_mask
        mean_entropy_loss = -torch.sum(target_dist.entropy() * loss_mask) / size_loss_mask
        total_loss = (
            mean_pi_loss
            + mean_vf_loss * config.vf_loss_coeff
            + mean_entropy_loss * self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
            + mean_kl_loss * self.curr_kl_coeffs_per_module[module_id]
        )
        self.metrics.log_dict(
            {
                POLICY_LOSS_KEY: mean_pi_loss,
                VF_LOSS_KEY: mean_vf_loss,
                ENTROPY_KEY: -mean_entropy_loss,
                LEARNER_RESULTS_KL_KEY: mean_kl_loss,
                LEARNER_RESULTS_CURR_KL_COEFF_KEY: self.curr_kl_coeffs_per_module[module_id],
                LEARNER_RESULTS_MEAN_IS_KEY: mean_is_ratio,
                LEARNER_RESULTS_VAR_IS_KEY: var_is_ratio,
            },
            key=module_id,
            window=1,
        )
        return total_loss


class APPOLagTorchLearner(DGAPPOTorchLearner):
    """RLlib's APPO loss with our policy-lag metrics: :class:`DGAPPOTorchLearner` with the gate off.

    With the gate off the loss equals ``APPOTorchLearner``'s (``tests/rllib/test_learners.py``), so
    this is the APPO baseline measured like DG-APPO (``dg-envs experiment distributed``):
    ``DGAPPOConfig().training(learner_class=APPOLagTorchLearner)``.
    """

    _gated = False
