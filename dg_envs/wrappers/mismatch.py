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
        noise_std: standard deviation of the noise (>= 0).
        p: probability that the mismatched actor acts (default 1: always).
        per: ``"step"`` or ``"episode"``.
        lag: act with the snapshot ``lag`` updates old (default 0: the newest; ``"stale"`` is
            then recorded too).
        random_lag: draw the lag uniformly from ``0..lag``.

    >>> MismatchSpec(noise_std=1.0).names, MismatchSpec(noise_std=1.0, lag=2).names
    (('mismatch',), ('mismatch', 'stale'))
    """

    name = MISMATCH
    stream = 0x0D6E_0002

    noise_std: float
    p: float = 1.0
    per: str = "step"
    lag: int = 0
    random_lag: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return (MISMATCH, STALE) if self.lag > 0 else (MISMATCH,)


class MismatchedActor(EnvPolicyActor):
    """Act with the learner's current policy perturbed: Gaussian noise on its logits or mean.

    The executed action is sampled from the newest pushed snapshot of the learner's policy with
    i.i.d. ``N(0, noise_std**2)`` noise added to its logits (Discrete, MultiDiscrete) or to the
    mean (Box), fresh noise for every action. ``info["behavior_log_prob"]`` is the log-probability
    under the *perturbed* distribution the action was drawn from. Before any snapshot was pushed
    the learner's action passes through unchanged and nothing is recorded.

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
