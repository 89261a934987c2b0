"""PPO-based algorithms: ``DGPPO``, ``KondoPPO`` and the baseline ``RelabelledPPO``.

>>> import dg_envs
>>> model = DGPPO("MlpPolicy", "CartPole-v1", eta=1.0, n_steps=16, batch_size=8, n_epochs=1, seed=0)
>>> _ = model.learn(16)
"""

from __future__ import annotations

from stable_baselines3 import PPO

from dg_envs.algos.weighting import DelightMixin, KondoMixin
from dg_envs.algos.relabel import ExecutedActionMixin

__all__ = ["DGPPO", "KondoPPO", "RelabelledPPO"]


class RelabelledPPO(ExecutedActionMixin, PPO):
    """SB3's PPO trained on the executed action: the fair PPO baseline under frictions.

    Exactly SB3's PPO, except that rollout entries a friction replaced hold the executed action
    and the rollout policy's log-prob of it (:class:`~dg_envs.algos.ExecutedActionMixin`), so
    the ratio's denominator is the rollout policy's probability of the action that ran. It does
    not push snapshots to stale/mismatched actors itself: pass
    ``callback=dg_envs.wrappers.SnapshotCallback()``.

    >>> import dg_envs
    >>> model = RelabelledPPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, n_epochs=1)
    >>> _ = model.learn(16)
    """


class DGPPO(DelightMixin, PPO):
    """PPO whose per-sample clipped surrogate is multiplied by the DG gate (arXiv 2603.14608).

    The gate uses the surprisal under the current learner policy (the ``log_prob`` of each
    minibatch's ``evaluate_actions``) and the SB3-normalised advantage (PPO's default
    ``normalize_advantage=True``), so ``eta`` is in units of the minibatch advantage std.

    :param eta: gate temperature (> 0).
    :param surprisal: see :class:`dg_envs.algos.DGA2C`.
    :param box_gate: Box actions only: which gradient of the Gaussian the gate multiplies
        (``"sample"``, ``"mean_only"``, ``"scale_leave_one_out"``, ``"per_dimension"``, ``"clipped"``;
        see :class:`dg_envs.algos.DGA2C`). ``None`` (default): ``"scale_leave_one_out"`` on a diagonal
        Gaussian (Box actions without gSDE), the choice of the ``widening`` experiment
        (docs/results/widening.md: the sample gate widened the Gaussian 13x and scored last but one
        of the five gates); ``"sample"`` otherwise. Before 2026-12-04 the default was ``"sample"``.
    Other arguments: as :class:`stable_baselines3.PPO`.
    """

    default_box_gate = "scale_leave_one_out"


class KondoPPO(KondoMixin, PPO):
    """DGPPO plus the Kondo gate (arXiv 2603.20526), per minibatch and epoch.

    Each minibatch is screened with a ``no_grad`` forward of the current policy
    (``screen="current"``; ``"cached"`` uses the rollout log-probs instead, exact on the
    first epoch only), then SB3's differentiable forward and backward run on kept samples
    only (plus, by default, a uniform sample for the critic). Advantages are normalised over
    the whole minibatch before slicing.

    :param keep_fraction, price, kondo_eta, value_samples: as :class:`dg_envs.algos.KondoA2C`.
    Other arguments: as :class:`DGPPO`, but ``box_gate``'s default stays ``"sample"``: the
    ``widening`` experiment that chose DGPPO's compared the gates without Kondo.
    """
