"""Per-sample weights on the policy gradient: DG, Kondo and importance weighting on SB3's ``train()``.

The one place where our algorithms differ from SB3. :class:`WeightedPolicyGradientMixin`
leaves SB3's ``train()`` body untouched. For the duration of ``train()`` it wraps two calls
that SB3 makes once per minibatch:

* ``rollout_buffer.get`` -> each minibatch passes through :meth:`_prepare_minibatch`
  (identity for DG; the Kondo gate screens it and slices it to the kept samples there,
  *before* SB3's differentiable forward) and is handed to a :class:`MinibatchPairing`;
* ``policy.evaluate_actions`` -> takes that prepared minibatch back (exactly one per call:
  an unpaired or repeated call raises, so a future SB3 that evaluated a minibatch twice
  could not train partly ungated in silence), and passes the returned ``log_prob`` through
  :class:`ScaleGradient`, an identity in the forward pass whose backward multiplies each
  sample's gradient by the detached weight from :meth:`_sample_weights`.

Since SB3's policy loss is linear in each sample's ``A_i * ratio_i`` (PPO) or
``A_i * log pi_i`` (A2C), scaling the gradient of ``log pi_i`` by ``w_i > 0`` is exactly
``w_i * A_i`` in place of ``A_i`` (PPO's clipping selects the same branch, as ``w_i > 0``):
for A2C the gradient is that of :func:`dg_envs.algos.gates.weighted_pg_loss`, the readable
reference the tests compare against.
Value and entropy losses are unchanged (caveat: a policy without an analytic entropy makes
SB3 estimate it from ``log_prob``, and that estimate's gradient is gated too). The logged
``train/policy_gradient_loss`` / ``train/policy_loss`` stay SB3's ungated values.

The gate sees the advantage the policy loss multiplies: SB3-normalised per minibatch when
``normalize_advantage=True`` (PPO's default), raw otherwise (A2C's default). ``eta`` is in
those units.

Box actions: ``box_gate`` (:data:`BOX_GATES`, :func:`box_gates`) says which gradient of the
diagonal Gaussian the DG gate multiplies. ``"sample"`` (DGA2C's and the Kondo algorithms'
default) gates the whole ``log pi(a)``; the others, DGPPO's default ``"scale_leave_one_out"``
among them, route separate gates to the mean's and the log-std's gradients
(:func:`gated_gaussian_log_prob`), because with the entropy-centred surprisal
``l = 0.5 * sum_d (z_d**2 - 1)`` the gate grows with ``A * (z**2 - 1)``, the score of
``log sigma``: a sample-level gate widens the Gaussian even when ``A`` carries no signal.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, NamedTuple

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.preprocessing import get_action_dim

from dg_envs.algos.gates import delight, dg_gate, kondo_gate
from dg_envs.algos.losses import kondo_keep
from dg_envs.algos.relabel import ExecutedActionMixin
from dg_envs.validation import check_choice, check_real
from dg_envs.wrappers.actors import push_policy_snapshot

__all__ = [
    "BOX_GATES", "KONDO_WEIGHTINGS", "ROUTED_BOX_GATES", "SURPRISALS", "MinibatchPairing", "PreparedMinibatch",
    "ScaleGradient",
    "WeightedPolicyGradientMixin", "box_gates", "gated_gaussian_log_prob", "gaussian_log_density", "surprisal",
    "push_snapshot",
]

SURPRISALS = ("auto", "raw", "entropy_centered", "per_dim", "clipped")
#: How :class:`KondoMixin` weights its survivors: ours (the DG gate) or as the reference code does.
KONDO_WEIGHTINGS = ("gate", "reference")
LOG_DENSITY_CLIP = 10.0
#: Which gradient of a diagonal Gaussian policy the DG gate multiplies (:func:`box_gates`).
BOX_GATES = ("sample", "mean_only", "scale_leave_one_out", "per_dimension", "clipped")
#: The options that gate a Gaussian's mean and log-std gradients apart (they need SB3's DiagGaussianDistribution).
ROUTED_BOX_GATES = ("mean_only", "scale_leave_one_out", "per_dimension")
#: The log-std's gate under ``box_gate="mean_only"``: the gate of a sample with zero delight.
SCALE_GATE_MEAN_ONLY = 0.5
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


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


def box_gates(
    box_gate: str,
    advantages: th.Tensor,
    log_prob: th.Tensor,
    entropy: th.Tensor | None,
    kind: str,
    eta: float = 1.0,
) -> tuple[th.Tensor, th.Tensor]:
    """The DG gates of a diagonal Gaussian's mean and log-std gradients, per sample and dimension.

    ``advantages``: ``(n,)``; ``log_prob`` and ``entropy``: per dimension, ``(n, d)`` (detached
    here). ``kind``: the surprisal (:func:`surprisal`; ``box_gate="clipped"`` uses ``"clipped"``).
    Returns ``(mean_gates, scale_gates)``, each ``(n, d)``: the weight on each sample's
    gradient through the mean ``mu_d`` and through ``log sigma_d``
    (:func:`gated_gaussian_log_prob` applies them). With ``l`` the sample's surprisal of the
    whole action (``log pi = sum_d log pi_d``) and ``l_d`` that of dimension ``d`` alone:

    * ``"sample"`` and ``"clipped"``: one gate ``sigmoid(A * l / eta)`` for both (today's DG;
      ``"clipped"`` is the DG paper's continuous-control choice whatever ``kind``:
      ``l = -clip(log pi, -10, 10)``, the same as ``box_gate="sample", surprisal="clipped"``);
    * ``"mean_only"``: the mean's gradient gated by ``sigmoid(A * l / eta)``, the log-std's by
      the constant 1/2: the gate of a zero-delight sample, so the scale steps as a typical
      sample's would and ``eta -> inf`` still gives PG at half step on every parameter;
    * ``"scale_leave_one_out"``: the mean as above; ``log sigma_d``'s gradient gated by
      ``sigmoid(A * l_(-d) / eta)``, the surprisal of the *other* dimensions (``log pi_(-d) =
      log pi - log pi_d``, ``H_(-d) = H - H_d``). For a Gaussian every surprisal of ``a_d`` is a
      function of ``z_d**2``, the statistic of ``log sigma_d``'s score ``z_d**2 - 1``, so a gate on
      ``log sigma_d`` that does not grow with ``z_d**2`` cannot use ``a_d`` at all: leaving it out
      makes the gate independent of the score (no widening when ``A`` is noise) while a sample
      surprising in every dimension (a landmine) is still gated. One dimension: 1/2;
    * ``"per_dimension"``: both gradients of dimension ``d`` gated by its own delight,
      ``sigmoid(A * l_d / eta)``.

    >>> import torch
    >>> adv = torch.tensor([1.0, -1.0])
    >>> lp = torch.tensor([[-1.0, -3.0], [-1.0, -3.0]])   # per-dimension log-densities
    >>> mean, scale = box_gates("mean_only", adv, lp, None, "raw")
    >>> mean[:, 0], scale[:, 0]                              # l = 4: sigmoid(4), sigmoid(-4); 1/2
    (tensor([0.9820, 0.0180]), tensor([0.5000, 0.5000]))
    >>> box_gates("scale_leave_one_out", adv, lp, None, "raw")[1]   # l_(-0) = 3, l_(-1) = 1
    tensor([[0.9526, 0.7311],
            [0.0474, 0.2689]])
    """
    check_choice(box_gate, "box_gate", BOX_GATES)
    kind = "clipped" if box_gate == "clipped" else kind
    if log_prob.ndim != 2 or advantages.shape != log_prob.shape[:1]:
        raise ValueError(f"advantages must be (n,) and log_prob (n, d), got {tuple(advantages.shape)} and "
                         f"{tuple(log_prob.shape)}")
    if entropy is not None and entropy.shape != log_prob.shape:
        raise ValueError(f"entropy must be per dimension like log_prob {tuple(log_prob.shape)}, got {tuple(entropy.shape)}")
    log_prob = log_prob.detach()
    entropy = None if entropy is None else entropy.detach()
    n, d = log_prob.shape
    adv = advantages.detach()[:, None].expand(n, d)

    def gate(surprise: th.Tensor) -> th.Tensor:
        return dg_gate(adv, -surprise, eta=eta)

    if box_gate == "per_dimension":
        per_dim = gate(surprisal(log_prob, entropy, kind, action_dim=1))
        return per_dim, per_dim
    total_lp, total_h = log_prob.sum(dim=1), None if entropy is None else entropy.sum(dim=1)
    whole = gate(surprisal(total_lp, total_h, kind, action_dim=d)[:, None].expand(n, d))
    if box_gate in ("sample", "clipped"):
        return whole, whole
    if box_gate == "mean_only":
        return whole, th.full_like(whole, SCALE_GATE_MEAN_ONLY)
    # scale_leave_one_out: the other dimensions' surprisal (exactly 0 for a single dimension)
    others_lp = total_lp[:, None] - log_prob if d > 1 else th.zeros_like(log_prob)
    others_h = None if entropy is None else (total_h[:, None] - entropy if d > 1 else th.zeros_like(entropy))
    return whole, gate(surprisal(others_lp, others_h, kind, action_dim=max(d - 1, 1)))


def gated_gaussian_log_prob(
    distribution: th.distributions.Normal, actions: th.Tensor, mean_gates: th.Tensor, scale_gates: th.Tensor
) -> th.Tensor:
    """``sum_d log N(a_d; mu_d, sigma_d)`` with the gradient through ``mu`` and ``sigma`` scaled per sample and dimension.

    The forward value equals ``distribution.log_prob(actions).sum(-1)`` exactly; the backward
    multiplies the gradient reaching ``mu_d`` by ``mean_gates[:, d]`` and the one reaching
    ``sigma_d`` (hence ``log sigma_d``) by ``scale_gates[:, d]``. Any loss of ``log pi`` (PPO's
    clipped ratio, A2C's ``A * log pi``) then has, per sample, the gated mean score and the
    gated scale score in place of the ungated ones.

    >>> import torch
    >>> mu, log_std = torch.zeros(1, 1, requires_grad=True), torch.zeros(1, 1, requires_grad=True)
    >>> dist = torch.distributions.Normal(mu, log_std.exp())
    >>> lp = gated_gaussian_log_prob(dist, torch.tensor([[2.0]]), torch.tensor([[0.25]]), torch.tensor([[0.5]]))
    >>> lp.backward()
    >>> mu.grad, log_std.grad   # z = 2: scores z / sigma = 2 and z**2 - 1 = 3, times the gates
    (tensor([[0.5000]]), tensor([[1.5000]]))
    """
    loc = ScaleGradient.apply(distribution.loc, mean_gates.to(distribution.loc.dtype))
    scale = ScaleGradient.apply(distribution.scale, scale_gates.to(distribution.scale.dtype))
    return gaussian_log_density(loc, scale, actions).sum(dim=-1)


def gaussian_log_density(loc: th.Tensor, scale: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """``log N(a; mu, sigma)`` per dimension: ``Normal.log_prob``'s formula, bit for bit, without its checks.

    The routed box gates evaluate it twice per minibatch, where ``Normal``'s construction and
    argument checks cost more than the arithmetic (on cheetah-run's minibatches of 256 they made
    DGPPO's ``train()`` with ``"scale_leave_one_out"`` 16% slower than with ``"sample"``; 7% without).

    >>> import torch
    >>> loc, scale, a = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    >>> torch.equal(gaussian_log_density(loc, scale, a), torch.distributions.Normal(loc, scale).log_prob(a))
    True
    """
    return -((actions - loc) ** 2) / (2 * scale**2) - scale.log() - _LOG_SQRT_2PI


def push_snapshot(env: Any, policy: Any) -> int:
    """Push a policy snapshot to every StaleActor/MismatchedActor under ``env`` (0 if none)."""
    if env is None:
        return 0
    return int(push_policy_snapshot(env, policy) or 0)


class PreparedMinibatch(NamedTuple):
    """A minibatch as SB3's differentiable forward will see it, with the Kondo masks over it."""

    batch: Any
    """What SB3 runs its forward/backward on (Kondo: only the selected samples)."""
    policy_mask: th.Tensor | None = None
    """Samples of ``batch`` in the policy gradient (None: all)."""
    value_mask: th.Tensor | None = None
    """Samples of ``batch`` in the value loss (None: all)."""
    screened: int | None = None
    """Samples screened to choose ``batch`` (None: ``batch`` is the whole minibatch)."""


class MinibatchPairing:
    """Pairs each prepared minibatch of one ``train()`` with exactly one ``evaluate_actions`` call.

    SB3's ``train()`` draws a minibatch from the buffer, then evaluates it once. Both sides
    of that pairing are wrapped; a minibatch prepared while the previous one was never
    evaluated, or an ``evaluate_actions`` call with no minibatch waiting (a second call for
    the same minibatch), raises instead of training partly ungated.

    >>> pairing = MinibatchPairing()
    >>> pairing.prepare(PreparedMinibatch(batch="mb0"))
    >>> pairing.take().batch
    'mb0'
    >>> pairing.take()
    Traceback (most recent call last):
    ...
    RuntimeError: evaluate_actions was called inside train() with no prepared minibatch waiting (a second call for the same minibatch?): each minibatch must be evaluated exactly once, or part of the update would go ungated
    """

    def __init__(self) -> None:
        self._waiting: PreparedMinibatch | None = None
        self.prepared = 0
        self.taken = 0

    def prepare(self, prepared: PreparedMinibatch) -> None:
        """Hand over the next minibatch; the previous one must have been evaluated."""
        if self._waiting is not None:
            raise RuntimeError(
                "a minibatch was drawn from the rollout buffer inside train() while the previous one was "
                "never passed to evaluate_actions: each minibatch must be evaluated exactly once"
            )
        self._waiting = prepared
        self.prepared += 1

    def take(self) -> PreparedMinibatch:
        """The minibatch waiting for this ``evaluate_actions`` call."""
        if self._waiting is None:
            raise RuntimeError(
                "evaluate_actions was called inside train() with no prepared minibatch waiting (a second call "
                "for the same minibatch?): each minibatch must be evaluated exactly once, or part of the "
                "update would go ungated"
            )
        prepared, self._waiting = self._waiting, None
        self.taken += 1
        return prepared

    def close(self) -> None:
        """End of ``train()``: every drawn minibatch must have been evaluated."""
        if self._waiting is not None:
            raise RuntimeError("train() ended with a drawn minibatch that was never passed to evaluate_actions")


class WeightedPolicyGradientMixin(ExecutedActionMixin):
    """Shared machinery of DG, Kondo, PG and IWPG; mix in before an SB3 on-policy class.

    Subclasses override :meth:`_sample_weights` (and Kondo :meth:`_prepare_minibatch`).
    Also: trains on executed actions (:class:`ExecutedActionMixin`) and pushes a policy
    snapshot to stale/mismatched actors at learn start and after every ``train()``.
    """

    surprisal: str = "auto"

    def __init__(self, *args: Any, surprisal: str = "auto", **kwargs: Any) -> None:
        self.surprisal = check_choice(surprisal, "surprisal", SURPRISALS)
        super().__init__(*args, **kwargs)

    # -- hooks ---------------------------------------------------------------------------
    def _sample_weights(
        self, prepared: PreparedMinibatch, advantages: th.Tensor, log_prob: th.Tensor, surprise: th.Tensor
    ) -> th.Tensor | None:
        """Per-sample weights on the policy-gradient term (None: unweighted, plain SB3)."""
        return None

    def _weighted_log_prob(
        self, prepared: PreparedMinibatch, advantages: th.Tensor, log_prob: th.Tensor, surprise: th.Tensor,
        actions: th.Tensor,
    ) -> th.Tensor:
        """SB3's ``log_prob`` of the minibatch, its gradient weighted per sample (same forward value)."""
        w = self._sample_weights(prepared, advantages, log_prob.detach(), surprise)
        return log_prob if w is None else ScaleGradient.apply(log_prob, w.to(log_prob.dtype))

    def _prepare_minibatch(self, batch: Any) -> PreparedMinibatch:
        """The minibatch SB3 will run its differentiable forward/backward on, with its masks."""
        return PreparedMinibatch(batch)

    def _value_weights(self, prepared: PreparedMinibatch) -> th.Tensor | None:
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
        self._pairing = pairing = MinibatchPairing()
        orig_get = buffer.get

        def get(batch_size: int | None = None):
            for batch in orig_get(batch_size):
                prepared = self._prepare_minibatch(batch)
                n, mask = len(prepared.batch.advantages), prepared.policy_mask
                self._stats["screened"].append(len(batch.advantages))
                self._stats["backward"].append(n)
                self._stats["kept"].append(n if mask is None else int(mask.sum()))
                pairing.prepare(prepared)
                yield prepared.batch

        def evaluate_actions(obs, actions, *args, **kwargs):
            values, log_prob, entropy = self._evaluate_actions(obs, actions, *args, **kwargs)
            prepared = pairing.take()
            adv = self._gate_advantages(prepared.batch.advantages)
            surprise = self._surprise(log_prob, entropy)
            mask = prepared.policy_mask  # Kondo: stats over kept samples only
            chi = delight(adv, -surprise)
            # Stats stay tensors until train() ends: no per-minibatch synchronisation.
            self._stats["delight_mean"].append((chi if mask is None else chi[mask]).mean())
            self._stats["surprisal_mean"].append((surprise if mask is None else surprise[mask]).mean())
            log_prob = self._weighted_log_prob(prepared, adv, log_prob, surprise, actions)
            v = self._value_weights(prepared)
            if v is not None:
                values = ScaleGradient.apply(values, v.to(values.dtype).reshape(values.shape))
            return values, log_prob, entropy

        # Instance attributes shadow the methods for this call only; restore whatever was there.
        saved = [(obj, name, obj.__dict__.get(name)) for obj, name in ((policy, "evaluate_actions"), (buffer, "get"))]
        policy.evaluate_actions = evaluate_actions
        buffer.get = get
        try:
            super().train()  # type: ignore[misc]
            pairing.close()
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
        for key in ("delight_mean", "surprisal_mean", "gate_mean", "scale_gate_mean", "iw_mean", "iw_max",
                    "iw_truncated_fraction"):
            if s[key]:
                values = th.stack([th.as_tensor(v, dtype=th.float32) for v in s[key]])
                rec(f"train/{key}", float(values.max() if key == "iw_max" else values.mean()))
        rec("train/kondo_kept_fraction", kept / max(1, screened))
        rec("train/kondo_backward_samples", backward)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_stats", "_pairing"]  # type: ignore[misc]


class DelightMixin(WeightedPolicyGradientMixin):
    """DG: weight each sample's policy-gradient term by ``sigmoid(A * l / eta)`` (detached).

    ``box_gate`` (Box actions, a diagonal Gaussian policy): which gradient the gate multiplies,
    one of :data:`BOX_GATES` (formulas: :func:`box_gates`). ``"sample"``: the whole
    ``log pi(a)``, mean and log-std alike; ``"mean_only"``: the mean's gradient, the log-std's
    gets 1/2; ``"scale_leave_one_out"``: the log-std of each dimension gated by the other
    dimensions' surprisal; ``"per_dimension"``: each dimension's ``log pi_d`` by its own delight;
    ``"clipped"``: the sample gate on the DG paper's clipped log-density ``-clip(log pi, -10, 10)``
    (the same as ``surprisal="clipped"``; any other explicit ``surprisal`` is refused). The
    routed options (``"mean_only"``, ``"scale_leave_one_out"``, ``"per_dimension"``) also log
    ``train/scale_gate_mean``, and ``train/gate_mean`` is then the mean's gate.
    ``None`` (default): :attr:`default_box_gate` on a diagonal Gaussian (Box actions without
    gSDE), else ``"sample"``, the only gate of a discrete policy.

    >>> from dg_envs.algos import DGPPO
    >>> DGPPO("MlpPolicy", "Pendulum-v1", box_gate="mean_only", n_steps=64, batch_size=32).learn(64).box_gate
    'mean_only'
    >>> DGPPO("MlpPolicy", "Pendulum-v1").box_gate, DGPPO("MlpPolicy", "CartPole-v1").box_gate
    ('scale_leave_one_out', 'sample')
    """

    eta: float = 1.0
    box_gate: str = "sample"  # models saved before the option load with the sample gate
    #: What ``box_gate=None`` means on a diagonal Gaussian policy. DGA2C keeps ``"sample"``: the
    #: ``widening`` experiment that chose DGPPO's compared the gates inside PPO only.
    default_box_gate: str = "sample"

    def __init__(self, *args: Any, eta: float = 1.0, box_gate: str | None = None, **kwargs: Any) -> None:
        # inf is allowed: the gate is 1/2 everywhere (PG at half step).
        self.eta = check_real(eta, "eta", low=0.0, low_open=True, allow_inf=True)
        if box_gate is not None:
            check_choice(box_gate, "box_gate", BOX_GATES)
        if box_gate == "clipped" and kwargs.get("surprisal", "auto") not in ("auto", "clipped"):
            raise ValueError(f"box_gate='clipped' is the gate on -clip(log pi, -10, 10): surprisal must be 'auto' or "
                             f"'clipped', got {kwargs['surprisal']!r}")
        # SB3's load() builds the model with _init_setup_model=False, then sets the saved attributes:
        # the saved gate, or for a model saved before the option the class's "sample". So the default
        # resolves only in a model built to train (the action space known).
        self.box_gate = box_gate or "sample"
        super().__init__(*args, **kwargs)
        action_space = getattr(self, "action_space", None)
        if action_space is None or not kwargs.get("_init_setup_model", True):
            return
        gaussian = isinstance(action_space, spaces.Box) and not getattr(self, "use_sde", False)
        if box_gate is None:
            self.box_gate = self.default_box_gate if gaussian else "sample"
        elif box_gate in ROUTED_BOX_GATES and not gaussian:
            raise ValueError(f"box_gate={box_gate!r} routes the gate through a diagonal Gaussian's mean and log-std: "
                             f"it needs Box actions without gSDE (this env's actions: {action_space}, use_sde="
                             f"{getattr(self, 'use_sde', False)}); leave box_gate=None or pass 'sample' or 'clipped'")
        elif box_gate == "clipped" and not isinstance(action_space, spaces.Box):
            raise ValueError(f"box_gate='clipped' is for Box action spaces (a Gaussian policy); this env's is "
                             f"{action_space}: leave box_gate=None")

    def _surprisal_kind(self) -> str:
        return "clipped" if self.box_gate == "clipped" else super()._surprisal_kind()

    def _gaussian(self) -> th.distributions.Normal:
        """The policy's Gaussian from the ``evaluate_actions`` call just made (SB3 keeps it on ``action_dist``)."""
        action_dist = self.policy.action_dist  # type: ignore[attr-defined]
        if type(action_dist) is not DiagGaussianDistribution:  # not squashed, not gSDE: their log-probs differ
            raise ValueError(f"box_gate={self.box_gate!r} needs SB3's DiagGaussianDistribution (use_sde=False, "
                             f"squash_output=False), got {type(action_dist).__name__}")
        return action_dist.distribution

    def _weighted_log_prob(self, prepared, advantages, log_prob, surprise, actions):
        if self.box_gate in ("sample", "clipped"):
            return super()._weighted_log_prob(prepared, advantages, log_prob, surprise, actions)
        dist = self._gaussian()
        with th.no_grad():  # Normal.log_prob's and entropy's formulas, without their checks: faster
            per_dim_log_prob = gaussian_log_density(dist.loc, dist.scale, actions)
            per_dim_entropy = 0.5 + _LOG_SQRT_2PI + dist.scale.log()
        mean_gates, scale_gates = box_gates(self.box_gate, advantages, per_dim_log_prob, per_dim_entropy,
                                            self._surprisal_kind(), eta=self.eta)
        mask = prepared.policy_mask
        if mask is not None:  # Kondo: only kept samples carry a policy gradient
            keep = mask.to(mean_gates.dtype)[:, None]
            mean_gates, scale_gates = mean_gates * keep, scale_gates * keep
        self._stats["gate_mean"].append((mean_gates if mask is None else mean_gates[mask]).mean())
        self._stats["scale_gate_mean"].append((scale_gates if mask is None else scale_gates[mask]).mean())
        return gated_gaussian_log_prob(dist, actions, mean_gates, scale_gates)

    def _sample_weights(self, prepared, advantages, log_prob, surprise):
        w = dg_gate(advantages, -surprise, eta=self.eta)
        mask = prepared.policy_mask
        self._stats["gate_mean"].append((w if mask is None else w[mask]).mean())
        return w


class KondoMixin(DelightMixin):
    """DG plus the Kondo gate: screen each minibatch without gradients, backward only through the selected samples.

    ``value_samples="uniform"`` (default): the differentiable forward/backward runs on the kept
    samples plus a uniform random sample of the same size; the policy gradient and the entropy
    bonus use those selected samples, weighted so that only kept ones carry a policy gradient,
    and the value loss's gradient comes from the uniform ones only (an unbiased critic for at
    most twice the kept cost). ``"kept"``: policy and value losses on the kept samples only
    (cheapest; the critic then sees only high-delight samples and drifts).

    ``weighting`` says how the survivors' policy gradient is weighted:

    * ``"gate"`` (default, ours): exactly the top ``k = max(1, round(keep_fraction * n))`` by
      delight (ties broken by ``torch.topk``), each weighted by the DG gate
      ``sigmoid(chi / eta)``, the loss averaged over the processed (selected) samples as SB3 does;
    * ``"reference"``: as the papers' code weights them (``egg/losses/kondo.py``, transcribed as
      :func:`dg_envs.algos.losses.kondo_loss`): survivors of
      :func:`~dg_envs.algos.losses.kondo_keep` (every sample tied with the ``k``-th delight
      kept too; with ``price``: ``chi > price``) weighted 1, and the sum divided by *all*
      ``n_screened`` samples of the minibatch. SB3 averages over the ``n_selected`` processed
      samples, so each survivor's gradient is scaled by ``n_selected / n_screened``: for A2C
      the policy gradient is then exactly ``kondo_loss``'s, for PPO it is the clipped
      surrogate of the survivors summed and divided by ``n_screened``. Needs ``kondo_eta = 0``
      (the reference's gate is hard).

    What still differs from the reference with ``"reference"``: the reference runs the full
    backward pass and masks the screened-out samples, we skip their backward; and our SB3
    version keeps a critic (trained on the uniform sample) and, for PPO, the ratio clipping.

    >>> from dg_envs.algos import KondoA2C
    >>> KondoA2C("MlpPolicy", "CartPole-v1", keep_fraction=0.03, weighting="reference").weighting
    'reference'
    """

    weighting: str = "gate"  # models saved before the option load with ours

    def __init__(
        self,
        *args: Any,
        keep_fraction: float | None = None,
        price: float | None = None,
        kondo_eta: float = 0.0,
        screen: str = "current",
        value_samples: str = "uniform",
        weighting: str = "gate",
        **kwargs: Any,
    ) -> None:
        if keep_fraction is not None and price is not None:
            raise ValueError(f"pass either keep_fraction or price, not both (got {keep_fraction!r} and {price!r})")
        if keep_fraction is not None:
            keep_fraction = check_real(keep_fraction, "keep_fraction", low=0.0, low_open=True, high=1.0)
        if price is not None:
            price = check_real(price, "price")
        self.keep_fraction, self.price = keep_fraction, price
        self.kondo_eta = check_real(kondo_eta, "kondo_eta", low=0.0)
        self.screen = check_choice(screen, "screen", ("current", "cached"))
        self.value_samples = check_choice(value_samples, "value_samples", ("uniform", "kept"))
        self.weighting = check_choice(weighting, "weighting", KONDO_WEIGHTINGS)
        if self.weighting == "reference" and self.kondo_eta != 0.0:
            raise ValueError(
                f"weighting='reference' is the reference's hard gate: kondo_eta must be 0, got {kondo_eta!r}")
        if self.weighting == "reference" and kwargs.get("box_gate") not in (None, "sample", "clipped"):
            raise ValueError(f"weighting='reference' weighs survivors 1, there is no gate to route: box_gate must be "
                             f"'sample' or 'clipped', got {kwargs['box_gate']!r}")
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
            if self.weighting == "reference" and self.keep_fraction is not None:
                keep = kondo_keep(adv, -surprise, self.keep_fraction)  # ties at the k-th delight all kept
            else:
                keep = kondo_gate(adv, -surprise, price=self.price, keep_fraction=self.keep_fraction,
                                  eta=self.kondo_eta)
            if not keep.any():  # SB3's train() needs a non-empty batch: keep the most delightful
                keep[th.argmax(delight(adv, -surprise))] = True
        screened = len(keep)
        if bool(keep.all()):
            return PreparedMinibatch(batch, screened=screened)
        if self.value_samples == "kept":
            return PreparedMinibatch(_select(batch, keep), screened=screened)
        # The critic learns from a uniform sample as large as the kept set: kept samples alone
        # (high delight) would bias V upwards and make every advantage negative.
        value = th.zeros_like(keep)
        value[th.randperm(len(keep), device=keep.device)[: int(keep.sum())]] = True
        selected = keep | value
        return PreparedMinibatch(_select(batch, selected), policy_mask=keep[selected], value_mask=value[selected],
                                 screened=screened)

    def _sample_weights(self, prepared, advantages, log_prob, surprise):
        mask = prepared.policy_mask
        if self.weighting == "reference":
            # Survivors weigh 1 and the sum is over all screened samples; SB3 divides by the
            # processed ones, so n_selected / n_screened turns its mean into the reference's.
            keep = th.ones_like(advantages) if mask is None else mask.to(advantages.dtype)
            return keep * (len(advantages) / (prepared.screened or len(advantages)))
        w = super()._sample_weights(prepared, advantages, log_prob, surprise)
        return w if mask is None else w * mask

    def _value_weights(self, prepared):
        return None if prepared.value_mask is None else prepared.value_mask.float()


def _select(batch: Any, keep: th.Tensor) -> Any:
    idx = keep.nonzero().flatten()
    fields = [({k: v[idx] for k, v in f.items()} if isinstance(f, dict) else f[idx]) for f in batch]
    return type(batch)(*fields)


class ImportanceWeightMixin(WeightedPolicyGradientMixin):
    """IWPG: weight by detached ``pi_theta(a|s) / mu(a|s)``, optionally truncated at ``max_weight``."""

    max_weight: float | None = None

    def __init__(self, *args: Any, max_weight: float | None = None, **kwargs: Any) -> None:
        if max_weight is not None:
            max_weight = check_real(max_weight, "max_weight", low=0.0, low_open=True)
        self.max_weight = max_weight
        super().__init__(*args, **kwargs)

    def _sample_weights(self, prepared, advantages, log_prob, surprise):
        batch = prepared.batch
        behaviour = getattr(batch, "behavior_log_prob", batch.old_log_prob)
        log_w = (log_prob - behaviour).clamp(max=80.0)  # exp(80) is finite in float32
        w = th.exp(log_w)
        if self.max_weight is not None:
            self._stats["iw_truncated_fraction"].append((w > self.max_weight).float().mean())
            w = w.clamp(max=self.max_weight)
        self._stats["iw_mean"].append(w.mean())
        self._stats["iw_max"].append(w.max())
        return w
