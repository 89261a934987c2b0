"""Staleness: the actor samples with the learner's policy as it was ``lag`` learner updates ago.

:class:`StaleSpec` holds the parameters (checked once); :class:`StaleActor` runs it around one
env and :class:`VectorStaleActor` — published as ``dg_envs.wrappers.vector.StaleActor`` — around
a whole Gymnasium ``VectorEnv``, with one forward pass per step. The shared machinery (snapshot
store, lags, pushes) is in :mod:`dg_envs.wrappers._policy`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dg_envs.wrappers._policy import EnvPolicyActor, PolicyActorSpec, VectorPolicyActor
from dg_envs.wrappers.protocol import MISMATCH, STALE

__all__ = ["StaleSpec", "StaleActor", "VectorStaleActor"]


@dataclass(frozen=True)
class StaleSpec(PolicyActorSpec):
    """A stale actor: the policy ``lag`` learner updates old acts, with probability ``p``.

    Args:
        lag: ``D``, the number of learner updates (snapshot pushes) the actor lags behind
            (integer >= 0).
        random_lag: ``False`` (default): the lag is ``lag``. ``True``: drawn uniformly from
            ``0..lag`` per step or, with ``per="episode"``, per episode. ``"update"``: drawn
            uniformly from ``0..lag`` at each push and held until the next one, the same for
            every step and (vector execution) every sub-env: the reference's launcher
            (``uniform_delay=True``) draws one delay per batch.
        per: ``"step"`` or ``"episode"``: when ``p`` (and a lag with ``random_lag=True``) is drawn.
        p: probability that the stale actor acts (default 1: always).
        noise_std: Gaussian noise on the stale policy's logits / mean (also a mismatched actor;
            ``"mismatch"`` is then recorded too). Default 0.
        noise: how ``noise_std`` applies, ``"per_step"`` (default) or ``"fixed_bias"``: see
            :class:`~dg_envs.wrappers.MismatchedActor`.

    >>> StaleSpec(lag=4).names, StaleSpec(lag=4, noise_std=0.5).names
    (('stale',), ('stale', 'mismatch'))
    >>> StaleSpec(lag=4, random_lag="update").lag_draw
    'update'
    """

    name = STALE
    stream = 0x0D6E_0001

    lag: int
    random_lag: bool | str = False
    per: str = "step"
    p: float = 1.0
    noise_std: float = 0.0
    noise: str = "per_step"

    @property
    def names(self) -> tuple[str, ...]:
        return (STALE, MISMATCH) if self.noise_std > 0 else (STALE,)


class StaleActor(EnvPolicyActor):
    """Act with the learner's policy as it was ``lag`` learner updates ago.

    The executed action is sampled from a snapshot of the learner's policy ``lag`` updates old
    (``random_lag=True``: the lag is drawn uniformly from ``0..lag``, per step or, with
    ``per="episode"``, once per episode; ``random_lag="update"``: drawn once per push and held
    until the next, as the reference draws one delay per batch). The learner pushes a snapshot
    after every update (``push_policy_snapshot``; see :mod:`dg_envs.wrappers.actors`). Before
    ``lag`` updates have happened the oldest snapshot held is used. Before any snapshot was
    pushed the learner's action passes through unchanged and nothing is recorded: it *is* a
    sample of the current policy, so it is not stale.

    **Lag is counted in pushes**, i.e. learner updates. The reference-method algorithms
    (:mod:`dg_envs.algos.reference`) take one gradient step per update and push after it, so
    there a lag of ``D`` is ``D`` gradient steps, as in the reference code
    (``egg/trainers/vanilla_async.py``). PPO-style learners (``DGPPO``, SB3's PPO with
    :class:`~dg_envs.wrappers.SnapshotCallback`) push once per ``train()`` call, which takes
    ``n_epochs x n_minibatches`` gradient steps: there the actor is ``D`` such calls old.
    With ``random_lag="update"`` the per-env execution draws its own lag in each env (in an
    SB3 ``VecEnv`` of per-env wrappers the sub-envs' lags differ); the vector execution draws
    one for all its sub-envs, as the reference does for a whole batch.

    When the stale actor acts, ``info["executed_action"]`` is its action and
    ``info["behavior_log_prob"]`` the stale policy's exact log-probability of it (what
    importance weighting needs), ``"stale"`` is in ``info["frictions"]``, and
    ``info["actor_lag"]`` is the age of the snapshot that acted (in learner updates: smaller
    than ``lag`` while fewer updates have happened). Arguments: :class:`StaleSpec`. A vector
    version exists: :class:`dg_envs.wrappers.vector.StaleActor`.

    Example:
        >>> import gymnasium as gym
        >>> from stable_baselines3 import PPO
        >>> from dg_envs.wrappers import SB3PolicyActor, StaleActor
        >>> env = StaleActor(gym.make("CartPole-v1"), lag=2)
        >>> _ = env.reset(seed=0)
        >>> "executed_action" in env.step(0)[4]  # no snapshot yet: the learner's action runs
        False
        >>> model = PPO("MlpPolicy", "CartPole-v1", device="cpu", seed=0)
        >>> env.push_policy_snapshot(SB3PolicyActor(model.policy))
        1
        >>> info = env.step(0)[4]
        >>> info["frictions"], info["behavior_log_prob"] < 0
        (['stale'], True)
    """

    spec_class = StaleSpec


class VectorStaleActor(VectorPolicyActor):
    """:class:`~dg_envs.wrappers.StaleActor` around a Gymnasium ``VectorEnv``: one forward pass per step.

    The same friction (:class:`~dg_envs.wrappers.stale.StaleSpec`), sub-env by sub-env: each
    sub-env has its own draws (a random lag per step or per episode), and the protocol keys
    follow Gymnasium's vector info (``info["executed_action"]`` with the mask
    ``info["_executed_action"]``, and so on; ``info["frictions"]`` holds tuples). The snapshot
    is pushed once (``push_policy_snapshot``) for all sub-envs and called once per step on the
    observations of every sub-env where it acts.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> from stable_baselines3 import PPO
        >>> from dg_envs.wrappers import push_policy_snapshot, vector
        >>> envs = vector.StaleActor(gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync"), lag=2)
        >>> model = PPO("MlpPolicy", "CartPole-v1", device="cpu", seed=0)
        >>> push_policy_snapshot(envs, model.policy)  # one snapshot, for the 3 sub-envs
        3
        >>> _ = envs.reset(seed=0)
        >>> info = envs.step(np.zeros(3, dtype=np.int64))[4]
        >>> info["_executed_action"], info["frictions"][0], info["actor_lag"]
        (array([ True,  True,  True]), ('stale',), array([0, 0, 0]))
    """

    spec_class = StaleSpec
