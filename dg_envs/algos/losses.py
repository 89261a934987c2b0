"""The reference code's policy losses as pure functions, rlax-style.

Each loss is a transcription of one file of the papers' reference code (google-deepmind/egg
release, commit ``d005eac``, ``egg/losses/``) onto per-sample tensors: a *sample* is one
token (one SB3 buffer entry). Inputs, all of one shape:

* ``log_prob``: the learner's ``log pi_theta(a|s)`` of the executed action, with gradient;
* ``behavior_log_prob``: the behaviour (sampler) log-prob *as the actor reported it*
  (``BehaviorRolloutBuffer.behavior_log_probs``; a lying actor reports 0);
* ``advantages``: already baselined (``dg_envs.algos.group``: episode return minus its
  group's mean, on every token), treated as constants;
* ``mask``: optional 0/1 validity of each sample (the reference's token mask).

Every mean is over the valid samples (the reference divides by the valid token count
``+ 1e-8``; we divide by ``max(count, 1)``). Each returns a :class:`LossOutput`: the scalar
loss and detached statistics named as our log keys (``gate_mean``, ``kondo_kept_fraction``...).

>>> import torch
>>> lp = torch.log(torch.tensor([0.5, 0.01], requires_grad=True))
>>> out = dg_loss(lp, torch.tensor([1.0, -1.0]), eta=1.0)
>>> round(float(out.stats["gate_mean"]), 4)  # (sigmoid(log 2) + sigmoid(log 0.01)) / 2: a rare failure ~0
0.3383
"""

from __future__ import annotations

from typing import NamedTuple

import torch as th

__all__ = [
    "LossOutput", "cross_entropy_loss", "dg_loss", "episode_sum", "kondo_keep", "kondo_loss", "pmpo_loss", "ppo_loss",
    "reinforce_loss",
]

#: The reference's REINFORCE: its PPO loss with ``clip_epsilon=1e9`` (``experiments/dpg/run.py``).
REINFORCE_CLIP = 1e9


class LossOutput(NamedTuple):
    """A loss and its detached statistics (keys as the ``train/`` log keys, without the prefix)."""

    loss: th.Tensor
    stats: dict[str, th.Tensor]


def _check(*tensors: th.Tensor | None, names: str) -> None:
    given = [(n, t) for n, t in zip(names.split(), tensors) if t is not None]
    for name, t in given:
        if not isinstance(t, th.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(t).__name__}")
    shapes = {tuple(t.shape) for _, t in given}
    if len(shapes) > 1:
        raise ValueError("inputs must have one shape, got " + ", ".join(f"{n} {tuple(t.shape)}" for n, t in given))


def _valid(log_prob: th.Tensor, mask: th.Tensor | None) -> tuple[th.Tensor, th.Tensor]:
    m = th.ones_like(log_prob) if mask is None else mask.detach().to(log_prob.dtype)
    return m, m.sum().clamp(min=1.0)


def dg_loss(
    log_prob: th.Tensor,
    advantages: th.Tensor,
    eta: float = 1.0,
    price: float = 0.0,
    mask: th.Tensor | None = None,
    surprisal: th.Tensor | None = None,
) -> LossOutput:
    """DG-weighted REINFORCE (``egg/losses/dg.py``; arXiv 2603.14608): ``-mean(w * A * log pi)``.

    ``w = sigmoid((chi - price) / eta)`` with the delight ``chi = A * surprisal`` under the
    learner, detached; ``eta = 0`` is the hard gate ``1{chi > price}``. No ratio: the
    behaviour probability is never read. ``surprisal`` defaults to each sample's own
    ``-log pi`` (the reference's token gate); pass e.g. the whole answer's
    (:func:`episode_sum` of ``-log_prob``) to gate every token by its answer's surprisal.
    """
    _check(log_prob, advantages, mask, surprisal, names="log_prob advantages mask surprisal")
    if not eta >= 0.0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    m, n = _valid(log_prob, mask)
    adv = advantages.detach()
    chi = adv * (-log_prob.detach() if surprisal is None else surprisal.detach())
    if eta == 0.0:
        gate = (chi > price).to(chi.dtype)
    else:  # an eta that underflows in chi's dtype would give 0 / 0 where chi == price: the limit is 1/2
        z = chi - price
        gate = th.sigmoid(th.where(z == 0, th.zeros_like(z), z / eta))
    loss = -(gate * adv * m * log_prob).sum() / n
    return LossOutput(loss, {"gate_mean": (gate * m).sum() / n, "delight_mean": (chi * m).sum() / n})


def ppo_loss(
    log_prob: th.Tensor,
    behavior_log_prob: th.Tensor,
    advantages: th.Tensor,
    clip_range: float = 0.2,
    mask: th.Tensor | None = None,
) -> LossOutput:
    """PPO's clipped surrogate against the *reported* behaviour log-prob (``egg/losses/ppo.py``).

    ``-mean(min(r * A, clip(r, 1 - eps, 1 + eps) * A))``, ``r = exp(log pi - log mu_reported)``
    per sample (token). ``iw_mean``/``iw_max`` are the ratios' mean and max.
    """
    _check(log_prob, behavior_log_prob, advantages, mask, names="log_prob behavior_log_prob advantages mask")
    if not clip_range > 0.0:
        raise ValueError(f"clip_range must be > 0, got {clip_range}")
    m, n = _valid(log_prob, mask)
    adv = advantages.detach() * m
    ratio = th.exp((log_prob - behavior_log_prob.detach()) * m)
    surrogate = th.minimum(ratio * adv, ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * adv)
    r = ratio.detach()
    clipped = ((r - 1.0).abs() > clip_range).to(r.dtype)
    stats = {"iw_mean": (r * m).sum() / n, "iw_max": r[m > 0].max() if (m > 0).any() else r.new_tensor(1.0),
             "clip_fraction": (clipped * m).sum() / n}
    return LossOutput(-surrogate.sum() / n, stats)


def reinforce_loss(
    log_prob: th.Tensor, behavior_log_prob: th.Tensor, advantages: th.Tensor, mask: th.Tensor | None = None
) -> LossOutput:
    """The reference's "REINFORCE": :func:`ppo_loss` with ``clip_range = 1e9`` (``experiments/dpg/run.py``).

    Its gradient is ``-mean(A * r * grad log pi)`` with ``r = pi / mu_reported``: for an
    injected action reported with probability 1, ``r = pi``.
    """
    return ppo_loss(log_prob, behavior_log_prob, advantages, clip_range=REINFORCE_CLIP, mask=mask)


def pmpo_loss(
    log_prob: th.Tensor,
    behavior_log_prob: th.Tensor,
    advantages: th.Tensor,
    alpha: float = 0.5,
    beta: float = 0.1,
    gamma: float = 1e-9,
    mask: th.Tensor | None = None,
) -> LossOutput:
    """Token-level PMPO (``egg/losses/pmpo.py``; Abdolmaleki et al. 2024).

    Samples with ``A > 0`` are accepted, the rest rejected: ``alpha * mean_acc(-log pi)
    + (1 - alpha) * mean_rej(log(gamma + pi)) + beta * mean(log mu_reported - log pi)``
    (each mean over its own samples; the last is the reference's KL-to-the-sampler estimate,
    whose gradient does not depend on ``mu``).
    """
    _check(log_prob, behavior_log_prob, advantages, mask, names="log_prob behavior_log_prob advantages mask")
    if not 0.0 <= alpha <= 1.0 or not beta >= 0.0 or not gamma >= 0.0:
        raise ValueError(f"need 0 <= alpha <= 1, beta >= 0 and gamma >= 0, got {alpha}, {beta}, {gamma}")
    m, n = _valid(log_prob, mask)
    accept = (advantages.detach() > 0).to(log_prob.dtype) * m
    reject = m - accept
    log_gamma = th.tensor(gamma, dtype=log_prob.dtype, device=log_prob.device).log()  # -inf for gamma = 0
    accepted = (-log_prob * accept).sum() / (accept.sum() + 1e-8)
    rejected = (th.logaddexp(log_gamma, log_prob) * reject).sum() / (reject.sum() + 1e-8)
    kl = ((behavior_log_prob.detach() - log_prob) * m).sum() / n
    loss = alpha * accepted + (1.0 - alpha) * rejected + beta * kl
    return LossOutput(loss, {"pmpo_accepted_fraction": accept.sum() / n, "kl_to_sampler": kl.detach()})


def kondo_keep(
    advantages: th.Tensor,
    log_prob: th.Tensor,
    keep_fraction: float,
    mask: th.Tensor | None = None,
    surprisal: th.Tensor | None = None,
) -> th.Tensor:
    """The reference Kondo gate (``egg/losses/kondo.py``): keep the top ``k`` samples by delight.

    ``k = max(1, round(keep_fraction * n_valid))``; every sample whose delight is within
    ``1e-6`` of the ``k``-th largest or above is kept (ties at the ``k``-th value all kept),
    so possibly more than ``k``. Returns a bool mask, False on invalid samples. ``surprisal``:
    as in :func:`dg_loss` (default ``-log_prob``).
    """
    _check(advantages, log_prob, mask, surprisal, names="advantages log_prob mask surprisal")
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    valid = th.ones_like(log_prob, dtype=th.bool) if mask is None else mask.detach() > 0
    chi = advantages.detach() * (-log_prob.detach() if surprisal is None else surprisal.detach())
    k = max(1, round(keep_fraction * int(valid.sum())))
    values = th.where(valid, chi, th.full_like(chi, -th.inf)).reshape(-1)
    threshold = th.sort(values).values[values.numel() - k] - 1e-6
    return (chi >= threshold) & valid


def kondo_loss(
    log_prob: th.Tensor,
    advantages: th.Tensor,
    keep_fraction: float = 0.03,
    mask: th.Tensor | None = None,
    keep: th.Tensor | None = None,
    surprisal: th.Tensor | None = None,
) -> LossOutput:
    """Kondo-gated REINFORCE as the reference weights it (``egg/losses/kondo.py``; arXiv 2603.20526).

    ``-sum_{kept}(A * log pi) / n_valid``: survivors of :func:`kondo_keep` weighted 1, the sum
    divided by *all* valid samples. ``keep``: a mask computed beforehand (a screening forward
    without gradients; then only the kept samples' ``log_prob`` need a gradient).
    ``surprisal``: as in :func:`dg_loss` (default ``-log_prob``).
    """
    _check(log_prob, advantages, mask, keep, surprisal, names="log_prob advantages mask keep surprisal")
    m, n = _valid(log_prob, mask)
    if keep is None:
        keep = kondo_keep(advantages, log_prob, keep_fraction, mask, surprisal)
    adv = advantages.detach()
    w = keep.to(log_prob.dtype) * m
    chi = adv * (-log_prob.detach() if surprisal is None else surprisal.detach())
    kept = w.sum().clamp(min=1.0)
    stats = {"kondo_kept_fraction": w.sum() / n, "delight_mean": (chi * w).sum() / kept}
    return LossOutput(-(w * adv * log_prob).sum() / n, stats)


def episode_sum(values: th.Tensor, episode_ids: th.Tensor) -> th.Tensor:
    """Each sample's episode total: ``out[i] = sum of values[j] over the j with episode_ids[j] == episode_ids[i]``.

    With ``values = -log_prob`` of an answer's tokens, every token gets the surprisal of the
    whole answer, ``-log pi(answer | prompt)``.

    >>> episode_sum(th.tensor([1.0, 2.0, 3.0, 4.0]), th.tensor([0, 0, 1, 1]))
    tensor([3., 3., 7., 7.])
    """
    _check(values, episode_ids, names="values episode_ids")
    ids = episode_ids.long()
    totals = th.zeros(int(ids.max()) + 1 if ids.numel() else 0, dtype=values.dtype, device=values.device)
    return totals.index_add(0, ids, values)[ids]


def cross_entropy_loss(label_log_prob: th.Tensor, mask: th.Tensor | None = None) -> LossOutput:
    """Supervised cross-entropy on the correct action (``egg/losses/xent.py``): ``-mean(log pi(label))``."""
    _check(label_log_prob, mask, names="label_log_prob mask")
    m, n = _valid(label_log_prob, mask)
    return LossOutput(-(label_log_prob * m).sum() / n, {})
