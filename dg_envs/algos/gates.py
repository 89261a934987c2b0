"""The DG and Kondo gates as pure functions of (advantages, log-probs).

* Delightful Policy Gradient (DG), arXiv 2603.14608: delight ``chi = U * l`` with the
  surprisal ``l = -log pi_theta(a|s)`` under the *current learner* policy, and the gate
  ``w = sigmoid(chi / eta)``, a constant (stop-gradient) multiplying each sample's
  policy-gradient term.
* The Kondo gate, arXiv 2603.20526: keep sample ``i`` (pay for its backward pass) with
  probability ``sigmoid((chi_i - price) / eta)``; ``eta = 0`` is the hard threshold
  ``chi_i > price``; ``keep_fraction = rho`` sets the price to the batch's ``(1 - rho)``
  quantile of delight (hard gate: exactly the top ``max(1, round(rho * n))`` samples).
  No ``1/P(keep)`` reweighting (biased by design, like DG).
* :func:`weighted_pg_loss`: the policy-gradient loss with per-sample weights, rlax-style; the
  readable reference that our algorithms' gradient-scaling path must equal.

Every function takes torch tensors of the same shape and is finite for any finite input
(an overflowing product ``U * l`` is clamped to the largest finite float).

>>> import torch
>>> dg_gate(torch.tensor([1.0, -1.0, 5.0]), torch.tensor([0.0, -2.0, -2.0]))
tensor([0.5000, 0.1192, 1.0000])
"""

from __future__ import annotations

import math

import torch as th

__all__ = ["delight", "dg_gate", "kondo_gate", "weighted_pg_loss"]


def _check_pair(advantages: th.Tensor, log_probs: th.Tensor) -> None:
    if not isinstance(advantages, th.Tensor) or not isinstance(log_probs, th.Tensor):
        raise TypeError("advantages and log_probs must be torch tensors")
    if advantages.shape != log_probs.shape:
        raise ValueError(
            f"advantages and log_probs must have the same shape, got {tuple(advantages.shape)} "
            f"and {tuple(log_probs.shape)}"
        )


def delight(advantages: th.Tensor, log_probs: th.Tensor) -> th.Tensor:
    """Delight ``chi = U * (-log pi)``: advantage times surprisal (DG, arXiv 2603.14608, eq. chi).

    Detached. An overflowing product is clamped to the dtype's finite range.

    >>> import torch
    >>> delight(torch.tensor([2.0, -1.0]), torch.tensor([-0.5, -3.0]))
    tensor([ 1., -3.])
    """
    _check_pair(advantages, log_probs)
    chi = advantages.detach() * (-log_probs.detach())
    return th.nan_to_num(chi, nan=0.0)  # nan only from 0*inf, impossible for finite inputs


def dg_gate(advantages: th.Tensor, log_probs: th.Tensor, eta: float = 1.0) -> th.Tensor:
    """The DG gate ``w = sigmoid(delight / eta)`` in (0, 1), detached (arXiv 2603.14608).

    A common action (``log pi ~ 0``) gets ``w = 1/2``; a rare success gets ``w -> 1``,
    a rare failure ``w -> 0``. ``eta -> inf`` gives ``1/2`` everywhere (PG at half step);
    ``eta -> 0`` gives the hard gate ``1{chi > 0}``.

    >>> import torch
    >>> dg_gate(torch.tensor([3.0]), torch.tensor([-1.0]), eta=1e-9)
    tensor([1.])
    """
    _check_pair(advantages, log_probs)
    if not (eta > 0):
        raise ValueError(f"eta must be > 0, got {eta}")
    chi = delight(advantages, log_probs)
    if math.isinf(eta):
        return th.full_like(chi, 0.5)
    # An eta that underflows in chi's dtype makes chi / eta = 0 / 0 where chi = 0: the limit
    # eta -> 0 there is sigmoid(0) = 1/2. Elsewhere sigmoid saturates cleanly at +-inf.
    return th.sigmoid(th.where(chi == 0, th.zeros_like(chi), chi / eta))


def kondo_gate(
    advantages: th.Tensor,
    log_probs: th.Tensor,
    price: float | None = None,
    keep_fraction: float | None = None,
    eta: float = 0.0,
    generator: th.Generator | None = None,
) -> th.Tensor:
    """Boolean keep mask of the Kondo gate (arXiv 2603.20526).

    :param price: compute price ``lambda``; keep when delight exceeds it (default 0 when
        ``keep_fraction`` is None too: keep positive delight).
    :param keep_fraction: ``rho`` in (0, 1]; sets the price to the batch's ``(1 - rho)``
        quantile of delight. With ``eta = 0`` exactly the top ``k = max(1, round(rho * n))``
        samples are kept (ties broken by ``torch.topk``).
    :param eta: temperature; 0 is the hard gate, > 0 keeps each sample with probability
        ``sigmoid((chi - price) / eta)``.
    :param generator: torch RNG for the stochastic gate (default: torch's global RNG).

    >>> import torch
    >>> adv, lp = torch.tensor([1.0, -1.0, 2.0, 0.5]), torch.tensor([-1.0, -1.0, -1.0, -1.0])
    >>> kondo_gate(adv, lp)
    tensor([ True, False,  True,  True])
    >>> kondo_gate(adv, lp, keep_fraction=0.5)
    tensor([ True, False,  True, False])
    """
    _check_pair(advantages, log_probs)
    if price is not None and keep_fraction is not None:
        raise ValueError("pass either price or keep_fraction, not both")
    if keep_fraction is not None and not (0.0 < keep_fraction <= 1.0):
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    if price is not None and not math.isfinite(price):
        raise ValueError(f"price must be finite, got {price}")
    if not (eta >= 0.0) or math.isinf(eta):
        raise ValueError(f"eta must be finite and >= 0, got {eta}")
    chi = delight(advantages, log_probs)
    flat = chi.reshape(-1)
    n = flat.numel()
    if n == 0:
        return th.zeros_like(chi, dtype=th.bool)
    if keep_fraction is not None:
        if eta == 0.0:
            k = max(1, round(keep_fraction * n))
            mask = th.zeros(n, dtype=th.bool, device=chi.device)
            mask[th.topk(flat, k).indices] = True
            return mask.reshape(chi.shape)
        threshold = th.quantile(flat.double(), 1.0 - keep_fraction).to(chi.dtype)
    else:
        threshold = th.tensor(0.0 if price is None else float(price), dtype=chi.dtype, device=chi.device)
    if eta == 0.0:
        return chi > threshold
    # chi - threshold may overflow to +-inf: sigmoid handles it; clamp keeps the division finite.
    z = th.nan_to_num((chi - threshold) / eta)
    p = th.sigmoid(z)
    return th.rand(chi.shape, generator=generator, device=chi.device, dtype=p.dtype) < p


def weighted_pg_loss(log_prob: th.Tensor, advantages: th.Tensor, weights: th.Tensor) -> th.Tensor:
    """Policy-gradient loss with per-sample weights: ``-mean(w_i * A_i * log pi_i)``.

    ``advantages`` and ``weights`` are constants (stop-gradient); only ``log_prob`` carries a
    gradient, so ``grad = -mean(w_i * A_i * grad log pi_i)``: REINFORCE for ``w = 1``, DG for
    ``w = dg_gate(A, log pi)`` (arXiv 2603.14608), Kondo for the gate times a keep mask. The
    shape of rlax's ``policy_gradient_loss``; our algorithms reach the same gradient through
    SB3's own loss (``dg_envs.algos.weighting.ScaleGradient``), and the tests hold them equal.

    >>> import torch
    >>> lp = torch.tensor([-0.5, -2.0], requires_grad=True)
    >>> loss = weighted_pg_loss(lp, torch.tensor([1.0, -1.0]), torch.tensor([0.5, 0.25]))
    >>> loss.backward()
    >>> lp.grad
    tensor([-0.2500,  0.1250])
    """
    if not all(isinstance(t, th.Tensor) for t in (log_prob, advantages, weights)):
        raise TypeError("log_prob, advantages and weights must be torch tensors")
    if not log_prob.shape == advantages.shape == weights.shape:
        raise ValueError(
            f"log_prob, advantages and weights must have the same shape, got {tuple(log_prob.shape)}, "
            f"{tuple(advantages.shape)} and {tuple(weights.shape)}"
        )
    return -(weights.detach() * advantages.detach() * log_prob).mean()
