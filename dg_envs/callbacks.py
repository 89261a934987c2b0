"""SB3 callbacks that record what an experiment plots: the Gaussian policy's action std over training.

SB3's PPO and A2C (and so every algorithm of :mod:`dg_envs.algos`) already log
``train/std``, the mean over action dimensions of ``exp(log_std)``, at the end of each
``train()``; a logger keeps only what its writers write, and the last update's value is never
dumped. :class:`ActionStdCallback` keeps the whole curve in memory, per dimension, for a
sweep's record.

Example:
    >>> from stable_baselines3 import PPO
    >>> model = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0)
    >>> callback = ActionStdCallback()
    >>> _ = model.learn(128, callback=callback)
    >>> [timesteps for timesteps, _, _ in callback.curve]
    [0, 64, 128]
    >>> callback.curve[0][1]   # SB3's log_std_init=0: std 1 before the first update
    1.0
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution

__all__ = ["ActionStdCallback", "action_std"]


def action_std(policy) -> np.ndarray | None:
    """The per-dimension action std ``exp(log_std)`` of an SB3 diagonal-Gaussian policy, else None.

    None for discrete policies and for gSDE / squashed Gaussians, whose std depends on the
    state or is not the action's.

    >>> from stable_baselines3 import PPO
    >>> action_std(PPO("MlpPolicy", "Pendulum-v1", policy_kwargs={"log_std_init": -1.0}).policy)
    array([0.36787945], dtype=float32)
    >>> action_std(PPO("MlpPolicy", "CartPole-v1").policy) is None
    True
    """
    if type(getattr(policy, "action_dist", None)) is not DiagGaussianDistribution:
        return None
    return policy.log_std.detach().exp().cpu().numpy().copy()


class ActionStdCallback(BaseCallback):
    """Keeps ``curve = [(timesteps, mean std, [std per dimension]), ...]``: at the start and after every update.

    The first point is the initial policy (0 timesteps, or where a continued ``learn`` starts);
    each later one is taken right after ``train()`` (SB3 starts the next rollout, or ends
    training), at the timesteps that update had seen. Records nothing for a policy without a
    state-independent Gaussian std (:func:`action_std` is None).
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.curve: list[tuple[int, float, list[float]]] = []
        self._recorded_at: int | None = None

    def _record(self) -> None:
        std = action_std(self.model.policy)
        if std is None or self._recorded_at == self.model.num_timesteps:
            return
        self._recorded_at = self.model.num_timesteps
        self.curve.append((int(self.model.num_timesteps), float(std.mean()), [float(s) for s in std]))

    def _on_training_start(self) -> None:
        self._record()

    def _on_rollout_start(self) -> None:
        # After the previous train() (and at the very start, where _recorded_at dedups it).
        self._record()

    def _on_training_end(self) -> None:
        self._record()  # the last update has no following rollout

    def _on_step(self) -> bool:
        return True
