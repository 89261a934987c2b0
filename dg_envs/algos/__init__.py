"""DG and Kondo variants of Stable-Baselines3's policy-gradient algorithms, and the papers' baselines.

=============  ============================================================================
name           what it is
=============  ============================================================================
``DGA2C``      SB3 A2C, each sample's policy-gradient term times the DG gate
               ``sigmoid(A * l / eta)`` (arXiv 2603.14608)
``DGPPO``      SB3 PPO, the same gate on each sample's clipped surrogate
``KondoA2C``   DGA2C + the Kondo gate (arXiv 2603.20526): screened without gradients,
               forward/backward only on kept samples (screening free: cached log-probs)
``KondoPPO``   DGPPO + the Kondo gate, screened per minibatch by a ``no_grad`` forward
``PG``         REINFORCE with a learned value baseline: A2C with ``gae_lambda=1``, no gate
``IWPG``       PG times detached ``pi_theta(a|s) / mu(a|s)`` (``max_weight`` truncation)
=============  ============================================================================

All of them train on the *executed* action (``info["executed_action"]`` from
:mod:`dg_envs.wrappers`; see :mod:`dg_envs.algos.relabel`, whose
:class:`ExecutedActionMixin` fixes vanilla SB3 too), push policy snapshots to
stale/mismatched actors at learn start and after every update, and differ from SB3 in one
small hook (:mod:`dg_envs.algos.weighting`). With the gate forced to 1 they reproduce SB3
bit for bit (``tests/algos/test_weighting.py``).

Design decisions:

* **Gate input**: surprisal ``l = -log pi`` under the *current* learner policy (the
  ``log_prob`` SB3's ``train()`` computes, detached) and the advantage the policy loss
  multiplies: SB3-normalised per minibatch when ``normalize_advantage=True`` (PPO's
  default), raw otherwise (A2C's default, PG, IWPG). ``eta`` is in those units.
* **Box actions**: ``surprisal="auto"`` is ``"entropy_centered"`` (``-log pi(a) - H(pi)``):
  zero in expectation whatever the Gaussian's width, so a typical action gets ``w ~ 1/2``
  as a common discrete action does, and the gate does not flip sign as the policy narrows
  (a density > 1 makes raw ``-log pi`` negative). ``"raw"``, ``"per_dim"`` and
  ``"clipped"`` (``[-10, 10]``, the paper's) are available for ablations. Discrete: raw.
* **Kondo value loss**: by default (``value_samples="uniform"``) the critic is trained on
  a uniform random sample as large as the kept set (the policy gradient only on kept
  samples): kept samples alone are the high-delight ones and bias ``V`` upwards until every
  advantage is negative (observed on the contextual bandit: stuck at 0.32 accuracy).
  ``value_samples="kept"`` is the cheapest (kept samples only). At least one sample is
  kept per minibatch. No ``1/P(keep)`` reweighting.
* **PG** is SB3 A2C with ``gae_lambda=1`` (Monte-Carlo return minus ``V(s)``, bootstrapped
  only where a rollout cuts an episode), raw advantages, one step per rollout.

Log keys (the same meaning in every algorithm):

==================================  ========================================================
key                                 meaning
==================================  ========================================================
``rollout/relabelled_fraction``     fraction of the last rollout's entries whose action a
                                    wrapper replaced (relabelled to the executed action)
``train/delight_mean``              mean delight ``chi = A * l`` over the samples in the
                                    policy loss (Kondo: kept samples), all algorithms
``train/surprisal_mean``            mean surprisal ``l`` (per the ``surprisal`` option)
``train/gate_mean``                 mean DG gate ``sigmoid(chi / eta)`` over those samples
                                    (DG and Kondo only; PG/IWPG have no gate)
``train/kondo_kept_fraction``       samples in the policy gradient / samples screened in
                                    the last ``train()`` (1.0 for non-Kondo algorithms)
``train/kondo_backward_samples``    samples that went through the differentiable forward
                                    and backward in the last ``train()``, summed over
                                    minibatches and epochs (Kondo: kept + value sample)
``train/iw_mean``, ``train/iw_max`` mean / max importance weight ``pi/mu`` (IWPG)
``train/iw_truncated_fraction``     fraction of weights above ``max_weight`` (IWPG)
==================================  ========================================================

SB3's own keys (``train/policy_gradient_loss``, ``train/policy_loss``, ...) keep SB3's
meaning: they are the ungated losses.

>>> import dg_envs
>>> from dg_envs.algos import KondoPPO
>>> model = KondoPPO("MlpPolicy", "CartPole-v1", keep_fraction=0.25, n_steps=32, batch_size=32, n_epochs=1)
>>> _ = model.learn(32)
>>> model.logger.name_to_value["train/kondo_kept_fraction"]
0.25
"""

from dg_envs.algos.a2c import DGA2C, IWPG, PG, KondoA2C, RelabelledA2C
from dg_envs.algos.gates import delight, dg_gate, kondo_gate, weighted_pg_loss
from dg_envs.algos.group import GroupBaselineRolloutBuffer, group_baseline_options
from dg_envs.algos.ppo import DGPPO, KondoPPO, RelabelledPPO
from dg_envs.algos.reference import DGPG, PMPO, CrossEntropyOracle, KondoPG, ReportedRatioPG, ReportedRatioPPO
from dg_envs.algos.registry import ALGORITHMS, get_algorithm
from dg_envs.algos.relabel import BehaviorRolloutBuffer, ExecutedActionMixin
from dg_envs.algos.transformer import TokenTransformerExtractor

__all__ = [
    "ALGORITHMS", "DGA2C", "DGPG", "DGPPO", "IWPG", "PG", "PMPO", "BehaviorRolloutBuffer", "CrossEntropyOracle",
    "ExecutedActionMixin", "GroupBaselineRolloutBuffer", "KondoA2C", "KondoPG", "KondoPPO", "RelabelledA2C",
    "RelabelledPPO", "ReportedRatioPG", "ReportedRatioPPO", "TokenTransformerExtractor", "delight", "dg_gate",
    "get_algorithm", "group_baseline_options", "kondo_gate", "weighted_pg_loss",
]
