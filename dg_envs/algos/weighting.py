"""The one place where our algorithms differ from SB3: per-sample weights on the policy gradient.

:class:`WeightedPolicyGradientMixin` leaves SB3's ``train()`` body untouched. For the
duration of ``train()`` it wraps two calls that SB3 makes once per minibatch:

* ``rollout_buffer.get`` -> each minibatch passes through :meth:`_prepare_minibatch`
  (identity for DG; the Kondo gate screens it and slices it to the kept samples there,
  *before* SB3's differentiable forward) and is remembered;
* ``policy.evaluate_actions`` -> the returned ``log_prob`` is passed through
  :class:`ScaleGradient`, an identity in the forward pass whose backward multiplies each
  sample's gradient by the detached weight from :meth:`_sample_weights`.

Since SB3's policy loss is linear in each sample's ``A_i * ratio_i`` (PPO) or
``A_i * log pi_i`` (A2C), scaling the gradient of ``log pi_i`` by ``w_i > 0`` is exactly
``w_i * A_i`` in place of ``A_i`` (PPO's clipping selects the same branch, as ``w_i > 0``).
Value and entropy losses are unchanged (caveat: a policy without an analytic entropy makes
SB3 estimate it from ``log_prob``, and that estimate's gradient is gated too). The logged
``train/policy_gradient_loss`` / ``train/policy_loss`` stay SB3's ungated values.

The gate sees the advantage the policy loss multiplies: SB3-normalised per minibatch when
``normalize_advantage=True`` (PPO's default), raw otherwise (A2C's default). ``eta`` is in
those units.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_action_dim

from dg_envs.algos.gates import delight, dg_gate, kondo_gate
from dg_envs.algos.relabel import ExecutedActionMixin

__all__ = ["SURPRISALS", "ScaleGradient", "WeightedPolicyGradientMixin", "surprisal", "push_snapshot"]

SURPRISALS = ("auto", "raw", "entropy_centered", "per_dim", "clipped")
LOG_DENSITY_CLIP = 10.0


class ScaleGradient(th.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by a constant ``w``."""

    @staticmethod
    def forward(ctx, x: th.Tensor, w: th.Tensor) -> th.Tensor:  # type: ignore[override]
        ctx.save_for_backward(w)
        return x.clone()

    @staticmethod
    def backward(ctx, grad: th.Tensor):  # type: ignore[override]
        (w,) = ctx.saved_tensors
        return grad * w, None


def surprisal(log_prob: th.Tensor, entropy: th.Tensor | None, kind: str, action_dim: int = 1) -> th.Tensor:
    """Surprisal ``l`` of each sampled action from its log-prob (detached).

    * ``raw``: ``-log pi(a)`` (exact for discrete actions);
    * ``entropy_centered``: ``-log pi(a) - H(pi)``, the surprisal relative to its own
      expectation: zero on average for any Gaussian width (batch mean of ``-log pi`` when
      the policy has no analytic entropy);
    * ``per_dim``: ``-log pi(a) / action_dim``;
    * ``clipped``: ``-clip(log pi(a), -10, 10)`` (the DG paper's continuous-control choice).

    >>> import torch
    >>> surprisal(torch.tensor([2.0, -1.0]), torch.tensor([0.5, 0.5]), "entropy_centered")
    tensor([-2.5000,  0.5000])
    """
    log_prob = log_prob.detach()
    if kind == "raw":
        return -log_prob
    if kind == "clipped":
        return -log_prob.clamp(-LOG_DENSITY_CLIP, LOG_DENSITY_CLIP)
    if kind == "per_dim":
        return -log_prob / action_dim
    if kind == "entropy_centered":
        h = entropy.detach() if entropy is not None else (-log_prob).mean().expand_as(log_prob)
        return -log_prob - h
    raise ValueError(f"surprisal must be one of {SURPRISALS}, got {kind!r}")


def push_snapshot(env: Any, policy: Any) -> int:
    """Push a policy snapshot to every StaleActor/MismatchedActor under ``env`` (0 if none)."""
    if env is None:
        return 0
    try:
        from dg_envs.wrappers.actors import push_policy_snapshot
    except ImportError:  # the wrappers package predates actors.py
        return 0
    return int(push_policy_snapshot(env, policy) or 0)


def _validate_eta(name: str, eta: float, allow_zero: bool = False) -> None:
    ok = isinstance(eta, (int, float)) and not math.isnan(eta) and (eta >= 0 if allow_zero else eta > 0)
    if not ok:
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {eta!r}")


class WeightedPolicyGradientMixin(ExecutedActionMixin):
    """Shared machinery of DG, Kondo, PG and IWPG; mix in before an SB3 on-policy class.

    Subclasses override :meth:`_sample_weights` (and Kondo :meth:`_prepare_minibatch`).
    Also: trains on executed actions (:class:`ExecutedActionMixin`) and pushes a policy
    snapshot to stale/mismatched actors at learn start and after every ``train()``.
    """

    surprisal: str = "auto"

    def __init__(self, *args: Any, surprisal: str = "auto", **kwargs: Any) -> None:
        if surprisal not in SURPRISALS:
            raise ValueError(f"surprisal must be one of {SURPRISALS}, got {surprisal!r}")
        self.surprisal = surprisal
        super().__init__(*args, **kwargs)

    # -- hooks ---------------------------------------------------------------------------
    def _sample_weights(self, batch: Any, advantages: th.Tensor, log_prob: th.Tensor, surprise: th.Tensor) -> th.Tensor | None:
        """Per-sample weights on the policy-gradient term (None: unweighted, plain SB3)."""
        return None

    def _prepare_minibatch(self, batch: Any) -> Any:
        """Return the minibatch SB3 will run its differentiable forward/backward on."""
        return batch

    def _value_weights(self, batch: Any) -> th.Tensor | None:
        """Per-sample weights on the value-loss gradient (None: SB3's value loss unchanged)."""
        return None

    # -- helpers -------------------------------------------------------------------------
    def _surprisal_kind(self) -> str:
        if self.surprisal != "auto":
            return self.surprisal
        # Box: entropy-centred, so the gate does not flip as the Gaussian narrows (a density
        # > 1 makes raw -log pi negative); discrete: raw, which is exact.
        return "entropy_centered" if isinstance(self.action_space, spaces.Box) else "raw"  # type: ignore[attr-defined]

    def _surprise(self, log_prob: th.Tensor, entropy: th.Tensor | None) -> th.Tensor:
        return surprisal(log_prob, entropy, self._surprisal_kind(), get_action_dim(self.action_space))  # type: ignore[attr-defined]

    def _gate_advantages(self, advantages: th.Tensor) -> th.Tensor:
        # Same normalisation as SB3's train(), so the gate sees the advantage the loss uses.
        if getattr(self, "normalize_advantage", False) and len(advantages) > 1:
            return (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return advantages

    def _actions_for_policy(self, actions: th.Tensor) -> th.Tensor:
        if isinstance(self.action_space, spaces.Discrete):  # type: ignore[attr-defined]
            return actions.long().flatten()
        return actions

    # -- SB3 overrides -------------------------------------------------------------------
    def _setup_learn(self, *args: Any, **kwargs: Any):
        out = super()._setup_learn(*args, **kwargs)  # type: ignore[misc]
        self.snapshot_envs = push_snapshot(self.env, self.policy)  # type: ignore[attr-defined]
        return out

    def train(self) -> None:
        policy, buffer = self.policy, self.rollout_buffer  # type: ignore[attr-defined]
        self._evaluate_actions = policy.evaluate_actions
        self._stats: dict[str, list[Any]] = defaultdict(list)
        orig_get = buffer.get
        current: dict[str, Any] = {}

        def get(batch_size: int | None = None):
            for batch in orig_get(batch_size):
                self._stats["screened"].append(len(batch.advantages))
                batch = self._prepare_minibatch(batch)
                self._stats["backward"].append(len(batch.advantages))
                mask = getattr(self, "_policy_mask", None)
                self._stats["kept"].append(len(batch.advantages) if mask is None else int(mask.sum()))
                current["batch"] = batch
                yield batch

        def evaluate_actions(obs, actions, *args, **kwargs):
            values, log_prob, entropy = self._evaluate_actions(obs, actions, *args, **kwargs)
            batch = current.pop("batch", None)
            if batch is not None:
                adv = self._gate_advantages(batch.advantages)
                surprise = self._surprise(log_prob, entropy)
                mask = getattr(self, "_policy_mask", None)  # Kondo: stats over kept samples only
                chi = delight(adv, -surprise)
                # Stats stay tensors until train() ends: no per-minibatch synchronisation.
                self._stats["delight_mean"].append((chi if mask is None else chi[mask]).mean())
                self._stats["surprisal_mean"].append((surprise if mask is None else surprise[mask]).mean())
                w = self._sample_weights(batch, adv, log_prob.detach(), surprise)
                if w is not None:
                    log_prob = ScaleGradient.apply(log_prob, w.to(log_prob.dtype))
                v = self._value_weights(batch)
                if v is not None:
                    values = ScaleGradient.apply(values, v.to(values.dtype).reshape(values.shape))
            return values, log_prob, entropy

        # Instance attributes shadow the methods for this call only; restore whatever was there.
        saved = [(obj, name, obj.__dict__.get(name)) for obj, name in ((policy, "evaluate_actions"), (buffer, "get"))]
        policy.evaluate_actions = evaluate_actions
        buffer.get = get
        try:
            super().train()  # type: ignore[misc]
        finally:
            for obj, name, previous in saved:
                if previous is None:
                    delattr(obj, name)
                else:
                    setattr(obj, name, previous)
            del self._evaluate_actions
        self._record_stats()
        self.snapshot_envs = push_snapshot(self.env, self.policy)  # type: ignore[attr-defined]

    def _record_stats(self) -> None:
        s, rec = self._stats, self.logger.record  # type: ignore[attr-defined]
        screened, backward, kept = sum(s["screened"]), sum(s["backward"]), sum(s["kept"])
        for key in ("delight_mean", "surprisal_mean", "gate_mean", "iw_mean", "iw_max", "iw_truncated_fraction"):
            if s[key]:
                values = th.stack([th.as_tensor(v, dtype=th.float32) for v in s[key]])
                rec(f"train/{key}", float(values.max() if key == "iw_max" else values.mean()))
        rec("train/kondo_kept_fraction", kept / max(1, screened))
        rec("train/kondo_backward_samples", backward)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_stats", "_policy_mask", "_value_mask"]  # type: ignore[misc]


class DelightMixin(WeightedPolicyGradientMixin):
    """DG: weight each sample's policy-gradient term by ``sigmoid(A * l / eta)`` (detached)."""

    eta: float = 1.0

    def __init__(self, *args: Any, eta: float = 1.0, **kwargs: Any) -> None:
        _validate_eta("eta", eta)
        self.eta = float(eta)
        super().__init__(*args, **kwargs)

    def _sample_weights(self, batch, advantages, log_prob, surprise):
        w = dg_gate(advantages, -surprise, eta=self.eta)
        mask = getattr(self, "_policy_mask", None)
        self._stats["gate_mean"].append((w if mask is None else w[mask]).mean())
        return w


class KondoMixin(DelightMixin):
    """DG plus the Kondo gate: screen each minibatch without gradients, train on kept samples only.

    ``value_samples="uniform"`` (default): the differentiable forward/backward runs on the kept
    samples plus a uniform random sample of the same size; the policy gradient uses the kept
    ones only, the value loss the uniform ones only (an unbiased critic for at most twice the
    kept cost). ``"kept"``: policy and value losses on the kept samples only (cheapest; the
    critic then sees only high-delight samples and drifts).
    """

    _policy_mask: th.Tensor | None = None
    _value_mask: th.Tensor | None = None

    def __init__(
        self,
        *args: Any,
        keep_fraction: float | None = None,
        price: float | None = None,
        kondo_eta: float = 0.0,
        screen: str = "current",
        value_samples: str = "uniform",
        **kwargs: Any,
    ) -> None:
        if keep_fraction is not None and price is not None:
            raise ValueError("pass either keep_fraction or price, not both")
        if keep_fraction is not None and not (isinstance(keep_fraction, (int, float)) and 0.0 < keep_fraction <= 1.0):
            raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction!r}")
        if price is not None and not (isinstance(price, (int, float)) and math.isfinite(price)):
            raise ValueError(f"price must be finite, got {price!r}")
        _validate_eta("kondo_eta", kondo_eta, allow_zero=True)
        if math.isinf(kondo_eta):
            raise ValueError(f"kondo_eta must be finite, got {kondo_eta!r}")
        if screen not in ("current", "cached"):
            raise ValueError(f"screen must be 'current' or 'cached', got {screen!r}")
        if value_samples not in ("uniform", "kept"):
            raise ValueError(f"value_samples must be 'uniform' or 'kept', got {value_samples!r}")
        self.keep_fraction, self.price, self.kondo_eta, self.screen = keep_fraction, price, float(kondo_eta), screen
        self.value_samples = value_samples
        super().__init__(*args, **kwargs)

    def train(self) -> None:
        # Kondo normalises advantages over the *whole* minibatch before slicing; SB3 must not
        # renormalise the kept few (that would flip the sign of some kept advantages).
        normalize = getattr(self, "normalize_advantage", False)
        self._normalize_before_slicing = normalize
        self.normalize_advantage = False
        try:
            super().train()
        finally:
            self.normalize_advantage = normalize

    def _prepare_minibatch(self, batch):
        adv = batch.advantages
        if self._normalize_before_slicing and len(adv) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            batch = batch._replace(advantages=adv)
        with th.no_grad():
            if self.screen == "cached" and self._surprisal_kind() != "entropy_centered":
                # The rollout policy's log-probs: exact for A2C (one update per rollout).
                log_prob, entropy = batch.old_log_prob, None
            else:
                _, log_prob, entropy = self._evaluate_actions(batch.observations, self._actions_for_policy(batch.actions))
            surprise = self._surprise(log_prob.flatten(), entropy)
            keep = kondo_gate(adv, -surprise, price=self.price, keep_fraction=self.keep_fraction, eta=self.kondo_eta)
            if not keep.any():  # SB3's train() needs a non-empty batch: keep the most delightful
                keep[th.argmax(delight(adv, -surprise))] = True
        self._policy_mask = self._value_mask = None
        if bool(keep.all()):
            return batch
        if self.value_samples == "kept":
            return _select(batch, keep)
        # The critic learns from a uniform sample as large as the kept set: kept samples alone
        # (high delight) would bias V upwards and make every advantage negative.
        value = th.zeros_like(keep)
        value[th.randperm(len(keep), device=keep.device)[: int(keep.sum())]] = True
        selected = keep | value
        self._policy_mask, self._value_mask = keep[selected], value[selected]
        return _select(batch, selected)

    def _sample_weights(self, batch, advantages, log_prob, surprise):
        w = super()._sample_weights(batch, advantages, log_prob, surprise)
        return w if self._policy_mask is None else w * self._policy_mask

    def _value_weights(self, batch):
        return None if self._value_mask is None else self._value_mask.float()


def _select(batch: Any, keep: th.Tensor) -> Any:
    idx = keep.nonzero().flatten()
    fields = [({k: v[idx] for k, v in f.items()} if isinstance(f, dict) else f[idx]) for f in batch]
    return type(batch)(*fields)


class ImportanceWeightMixin(WeightedPolicyGradientMixin):
    """IWPG: weight by detached ``pi_theta(a|s) / mu(a|s)``, optionally truncated at ``max_weight``."""

    max_weight: float | None = None

    def __init__(self, *args: Any, max_weight: float | None = None, **kwargs: Any) -> None:
        if max_weight is not None and not (isinstance(max_weight, (int, float)) and max_weight > 0):
            raise ValueError(f"max_weight must be > 0, got {max_weight!r}")
        self.max_weight = max_weight
        super().__init__(*args, **kwargs)

    def _sample_weights(self, batch, advantages, log_prob, surprise):
        behaviour = getattr(batch, "behavior_log_prob", batch.old_log_prob)
        log_w = (log_prob - behaviour).clamp(max=80.0)  # exp(80) is finite in float32
        w = th.exp(log_w)
        if self.max_weight is not None:
            self._stats["iw_truncated_fraction"].append((w > self.max_weight).float().mean())
            w = w.clamp(max=self.max_weight)
        self._stats["iw_mean"].append(w.mean())
        self._stats["iw_max"].append(w.max())
        return w
