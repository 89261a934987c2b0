"""A2C-based algorithms: ``DGA2C``, ``KondoA2C`` and the baselines ``PG``, ``IWPG`` and ``RelabelledA2C``.

Each takes SB3 ``A2C``'s arguments plus its own keyword arguments, trains on the executed
action (:mod:`dg_envs.algos.relabel`) and pushes policy snapshots to stale/mismatched actors.

>>> import dg_envs
>>> model = DGA2C("MlpPolicy", "CartPole-v1", eta=1.0, n_steps=8, seed=0)
>>> _ = model.learn(16)
"""

from __future__ import annotations

from typing import Any

from stable_baselines3 import A2C

from dg_envs.algos.weighting import DelightMixin, ImportanceWeightMixin, KondoMixin, WeightedPolicyGradientMixin
from dg_envs.algos.relabel import ExecutedActionMixin

__all__ = ["DGA2C", "IWPG", "KondoA2C", "PG", "RelabelledA2C"]


class RelabelledA2C(ExecutedActionMixin, A2C):
    """SB3's A2C trained on the executed action (see :class:`~dg_envs.algos.RelabelledPPO`).

    >>> import dg_envs
    >>> model = RelabelledA2C("MlpPolicy", "CartPole-v1", n_steps=8)
    >>> _ = model.learn(16)
    """


class DGA2C(DelightMixin, A2C):
    """A2C whose per-sample policy-gradient term is multiplied by the DG gate (arXiv 2603.14608).

    :param eta: gate temperature (> 0; ``inf`` gives PG at half step), in the units of the
        advantage the loss uses (raw unless ``normalize_advantage=True``).
    :param surprisal: ``"auto"`` (raw for discrete actions, ``"entropy_centered"`` for Box),
        ``"raw"``, ``"entropy_centered"``, ``"per_dim"`` or ``"clipped"``.
    :param box_gate: Box actions only: which gradient of the Gaussian the gate multiplies,
        ``"sample"`` (the whole ``log pi(a)``), ``"mean_only"``, ``"scale_leave_one_out"``,
        ``"per_dimension"`` or ``"clipped"`` (:data:`dg_envs.algos.weighting.BOX_GATES`; formulas in
        :func:`~dg_envs.algos.weighting.box_gates`; the ``widening`` experiment compares them).
        ``None`` (default): ``"sample"`` (DGPPO's default is ``"scale_leave_one_out"``, chosen by
        that experiment inside PPO, which did not run A2C).
    Other arguments: as :class:`stable_baselines3.A2C`.
    """


class KondoA2C(KondoMixin, A2C):
    """DGA2C plus the Kondo gate (arXiv 2603.20526): backward passes only for kept samples.

    :param keep_fraction: ``rho`` in (0, 1]: keep the top ``max(1, round(rho*n))`` samples by
        delight (hard gate) or use the batch's ``(1-rho)`` delight quantile as the price.
    :param price: explicit price ``lambda`` (default 0 when ``keep_fraction`` is None).
    :param kondo_eta: 0 for the hard gate, > 0 keeps with probability ``sigmoid((chi-price)/kondo_eta)``.
    :param screen: ``"cached"`` (default here; screening is free: the rollout buffer's
        log-probs are the current policy's, as A2C updates once per rollout) or ``"current"``
        (a ``no_grad`` forward). Box actions with ``entropy_centered`` always screen with a forward.
    :param value_samples: ``"uniform"`` (default): SB3's forward/backward runs on the kept
        samples plus a uniform random sample of the same size; only kept samples carry a policy
        gradient, only the uniform ones a value-loss gradient (kept samples alone are the
        high-delight ones and bias the critic upwards); the entropy bonus is over both.
        ``"kept"``: everything on the kept samples only (cheapest; the critic drifts).
    Other arguments: as :class:`DGA2C`.
    """

    def __init__(self, *args: Any, screen: str = "cached", **kwargs: Any) -> None:
        super().__init__(*args, screen=screen, **kwargs)


class PG(WeightedPolicyGradientMixin, A2C):
    """REINFORCE with a learned value baseline: SB3 A2C with ``gae_lambda=1`` and no gate.

    The advantage is the Monte-Carlo return minus ``V(s)`` (bootstrapped with ``V`` only
    where a rollout cuts an episode), raw (``normalize_advantage=False``), one gradient step
    per rollout of ``n_steps * n_envs`` samples, no importance ratio, no clipping.
    Other arguments: as :class:`stable_baselines3.A2C` (``gae_lambda`` defaults to 1).
    """

    def __init__(self, *args: Any, gae_lambda: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, gae_lambda=gae_lambda, **kwargs)


class IWPG(ImportanceWeightMixin, PG):
    """PG with each sample weighted by detached ``pi_theta(a|s) / mu(a|s)``.

    ``mu`` is the actor-reported ``info["behavior_log_prob"]`` where a wrapper replaced the
    action (a buggy actor lies: it reports 1), else the rollout policy's own probability.

    :param max_weight: truncate weights at this value (> 0; None: no truncation).
    Other arguments: as :class:`PG`.
    """
