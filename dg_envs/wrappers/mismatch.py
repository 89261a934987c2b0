"""Mismatch: the actor samples with the learner's current policy perturbed by Gaussian noise.

:class:`MismatchSpec` holds the parameters (checked once); :class:`MismatchedActor` runs it
around one env and :class:`VectorMismatchedActor` — published as
``dg_envs.wrappers.vector.MismatchedActor`` — around a whole Gymnasium ``VectorEnv``, with one
forward pass per step. The shared machinery is in :mod:`dg_envs.wrappers._policy`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dg_envs.wrappers._policy import EnvPolicyActor, PolicyActorSpec, VectorPolicyActor
from dg_envs.wrappers.protocol import MISMATCH, STALE

__all__ = ["MismatchSpec", "MismatchedActor", "VectorMismatchedActor"]


@dataclass(frozen=True)
class MismatchSpec(PolicyActorSpec):
    """A mismatched actor: the learner's policy with ``N(0, noise_std**2)`` noise on its logits / mean.

    Args:
        noise_std: standard deviation of the noise (>= 0): ``sigma``.
        p: probability that the mismatched actor acts (default 1: always).
        per: ``"step"`` or ``"episode"``.
        lag: act with the snapshot ``lag`` updates old (default 0: the newest; ``"stale"`` is
            then recorded too).
        random_lag: ``False``, ``True`` (a lag drawn from ``0..lag`` per step / episode) or
            ``"update"`` (one drawn per push): see :class:`~dg_envs.wrappers.StaleActor`.
        noise: ``"per_step"`` (default): fresh noise for every logit of every action.
            ``"fixed_bias"``: one bias vector ``noise_std * z``, ``z ~ N(0, I)``, over the logits
            (Box: over the mean's dimensions), drawn once and held: the reference's
            ``egg/networks/logit_noise.py`` (``fixed=True``, its launcher's default).

    >>> MismatchSpec(noise_std=1.0).names, MismatchSpec(noise_std=1.0, lag=2).names
    (('mismatch',), ('mismatch', 'stale'))
    >>> MismatchSpec(noise_std=1.0, noise="fixed").noise
    Traceback (most recent call last):
    ...
    ValueError: noise must be one of 'per_step', 'fixed_bias'; got 'fixed'
    """

    name = MISMATCH
    stream = 0x0D6E_0002

    noise_std: float
    p: float = 1.0
    per: str = "step"
    lag: int = 0
    random_lag: bool | str = False
    noise: str = "per_step"

    @property
    def names(self) -> tuple[str, ...]:
        return (MISMATCH, STALE) if self.lag > 0 else (MISMATCH,)


class MismatchedActor(EnvPolicyActor):
    """Act with the learner's current policy perturbed: Gaussian noise on its logits or mean.

    The executed action is sampled from the newest pushed snapshot of the learner's policy with
    ``N(0, noise_std**2)`` noise added to its logits (Discrete, MultiDiscrete) or to the mean
    (Box). ``info["behavior_log_prob"]`` is the log-probability under the *perturbed*
    distribution the action was drawn from. Before any snapshot was pushed the learner's action
    passes through unchanged and nothing is recorded.

    Two kinds of noise (``noise``):

    * ``"per_step"`` (default): fresh i.i.d. noise for every logit of every action: a policy
      that jitters around the learner's, unbiased on average.
    * ``"fixed_bias"``: the reference's mismatch (``egg/networks/logit_noise.py``): one vector
      ``noise_std * z``, ``z ~ N(0, I)`` of the logits' width (MultiDiscrete: every component's
      logits; Box: one entry per action dimension, on the mean), added to the logits of every
      action: a *systematically* different policy. It is drawn from the wrapper's own
      generator at the first seeded reset and held for the wrapper's life (``logit_bias``);
      the vector execution holds one for all its sub-envs (as the reference's one actor
      network), while per-env wrappers in an SB3 ``VecEnv`` each draw their own. The actor is
      called with ``logit_bias=`` (:class:`~dg_envs.wrappers.Actor`).

    With ``lag > 0`` it perturbs the policy ``lag`` updates old instead (as the reference code's
    stale, noisy actors do; ``"stale"`` is then recorded too).
    :func:`~dg_envs.wrappers.apply_frictions` uses this when both staleness and mismatch are
    asked for. Arguments: :class:`MismatchSpec`. A vector version exists:
    :class:`dg_envs.wrappers.vector.MismatchedActor`.

    Example:
        >>> import gymnasium as gym
        >>> from stable_baselines3 import PPO
        >>> from dg_envs.wrappers import MismatchedActor, SB3PolicyActor
        >>> env = MismatchedActor(gym.make("Pendulum-v1"), noise_std=0.5)
        >>> model = PPO("MlpPolicy", "Pendulum-v1", device="cpu", seed=0)
        >>> env.push_policy_snapshot(SB3PolicyActor(model.policy))
        1
        >>> _ = env.reset(seed=0)
        >>> info = env.step(env.action_space.sample())[4]
        >>> info["frictions"], info["executed_action"].shape
        (['mismatch'], (1,))
        >>> biased = MismatchedActor(gym.make("CartPole-v1"), noise_std=1.0, noise="fixed_bias")
        >>> _ = biased.reset(seed=0)
        >>> biased.logit_bias.shape  # one bias per action, held for the wrapper's life
        (2,)
    """

    spec_class = MismatchSpec


class VectorMismatchedActor(VectorPolicyActor):
    """:class:`~dg_envs.wrappers.MismatchedActor` around a Gymnasium ``VectorEnv``: one forward pass per step.

    The same friction (:class:`~dg_envs.wrappers.mismatch.MismatchSpec`) sub-env by sub-env,
    recorded in Gymnasium's vector info convention (values and ``"_" + key`` masks).

    Example:
        >>> import gymnasium as gym
        >>> from stable_baselines3 import PPO
        >>> from dg_envs.wrappers import push_policy_snapshot, vector
        >>> envs = vector.MismatchedActor(gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync"), noise_std=0.5)
        >>> push_policy_snapshot(envs, PPO("MlpPolicy", "Pendulum-v1", device="cpu", seed=0).policy)
        2
        >>> _ = envs.reset(seed=0)
        >>> info = envs.step(envs.action_space.sample())[4]
        >>> info["executed_action"].shape, info["frictions"].tolist()
        ((2, 1), [('mismatch',), ('mismatch',)])
    """

    spec_class = MismatchSpec
