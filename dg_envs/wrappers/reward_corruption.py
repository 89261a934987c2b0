"""Reward corruption: with probability ``p`` the reward is a coin, noisy or sign-flipped; the clean one is kept.

:class:`RewardCorruptionSpec` holds the parameters (checked once) and :func:`corrupt` the
semantics, written once for a single reward and for a batch; :class:`RewardCorruption` runs
it around one env and :class:`VectorRewardCorruption` — published as
``dg_envs.wrappers.vector.RewardCorruption`` — around a whole Gymnasium ``VectorEnv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, SupportsFloat

import numpy as np
from gymnasium.vector import SyncVectorEnv, VectorWrapper

from dg_envs.validation import check_bool, check_choice, check_real
from dg_envs.wrappers._base import EnvFriction, FrictionSpec, VectorFriction
from dg_envs.wrappers.protocol import DISCOVERY, FRICTIONS, REWARD_CORRUPTION, VectorStepRecord, record_friction, record_reward_change

__all__ = ["MODE_VALUES", "RewardCorruptionSpec", "RewardCorruption", "VectorRewardCorruption", "corrupt"]

MODE_VALUES = ("coin", "gaussian", "sign_flip")


@dataclass(frozen=True)
class RewardCorruptionSpec(FrictionSpec):
    """Reward corruption: with probability ``p`` the reward is replaced or perturbed.

    Args:
        p: probability of corruption, per step or per episode.
        mode: ``"coin"`` (``low`` or ``high`` with probability 1/2 each), ``"gaussian"`` (adds
            ``N(0, noise_std**2)``) or ``"sign_flip"`` (negates it).
        low, high: the two rewards of ``"coin"`` (default: the env's finite ``reward_range``,
            else 0 and 1).
        noise_std: standard deviation of ``"gaussian"`` noise (default 1).
        per: ``"step"`` or ``"episode"``.
        spare_discoveries: leave the reward of a discovery step clean (default False: the
            reference's coin hits every answer, injected correct ones included).
        terminal_only: corrupt only the reward of an episode's last step (default False).

    >>> RewardCorruptionSpec(p=0.1, low=2.0, high=1.0)
    Traceback (most recent call last):
    ...
    ValueError: low must be <= high (the coin's two rewards; set both for this reward scale), got low=2.0 and high=1.0
    """

    name = REWARD_CORRUPTION
    stream = 0x0D6E_0004

    p: float
    mode: str = "coin"
    low: float | None = None
    high: float | None = None
    noise_std: float = 1.0
    per: str = "step"
    spare_discoveries: bool = False
    terminal_only: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("mode", check_choice(self.mode, "mode", MODE_VALUES))
        if self.low is not None:
            self._set("low", check_real(self.low, "low"))
        if self.high is not None:
            self._set("high", check_real(self.high, "high"))
        self._set("noise_std", check_real(self.noise_std, "noise_std", low=0.0))
        self._set("spare_discoveries", check_bool(self.spare_discoveries, "spare_discoveries"))
        self._set("terminal_only", check_bool(self.terminal_only, "terminal_only"))
        if self.low is not None and self.high is not None:
            self.coin_bounds((self.low, self.high))

    def coin_bounds(self, reward_range: Any) -> tuple[float, float]:
        """The coin's ``(low, high)``: the given ones, else the env's finite ``reward_range``, else (0, 1)."""
        try:
            range_low, range_high = (float(x) for x in reward_range)
        except (TypeError, ValueError):
            range_low, range_high = 0.0, 1.0
        if not (np.isfinite(range_low) and np.isfinite(range_high) and range_low < range_high):
            range_low, range_high = 0.0, 1.0
        low = range_low if self.low is None else self.low
        high = range_high if self.high is None else self.high
        if low > high:
            raise ValueError(
                f"low must be <= high (the coin's two rewards; set both for this reward scale), got low={low} and high={high}"
            )
        return low, high


def corrupt(mode: str, reward: Any, rng: np.random.Generator, low: float, high: float, noise_std: float, size: int | None = None) -> Any:
    """The corrupted reward(s): one (``size=None``, a float) or ``size`` of them (an array), same semantics.

    >>> corrupt("sign_flip", 1.0, np.random.default_rng(0), 0.0, 1.0, 1.0)
    -1.0
    >>> corrupt("coin", np.zeros(4), np.random.default_rng(0), -1.0, 1.0, 1.0, size=4)
    array([-1.,  1.,  1.,  1.])
    """
    if mode == "coin":
        draw = rng.random(size)
        return high * (draw < 0.5) + low * (draw >= 0.5)  # exactly high or low, for a float or an array
    if mode == "gaussian":
        return reward + noise_std * rng.standard_normal(size)
    return -reward


class RewardCorruption(EnvFriction):
    """With probability ``p`` the reward is corrupted; the clean one is kept in ``info["true_reward"]``.

    Modes: ``"coin"`` replaces the reward by ``low`` or ``high`` with probability 1/2 each
    (the paper's random 0/1 reward; by default the bounds of the env's ``reward_range`` when it
    declares a finite one, else 0 and 1, which fit our tasks, whose rewards lie in [0, 1] — set
    them for other reward scales; Gymnasium 1.x envs rarely declare a range); ``"gaussian"``
    adds ``N(0, noise_std**2)``; ``"sign_flip"`` negates it. ``"reward_corruption"`` is added to
    ``info["frictions"]`` when the friction fires, and ``info["true_reward"]`` is present exactly
    when the reward changed (a coin that lands on the true value, or a flipped 0, changes nothing).

    Reward corruption is independent of the actor's injections, as in the reference code
    (``egg/environments/bernoulli_noise_wrapper.py`` wraps the env's ``get_reward``, which
    ``egg/actors/dreamer_bps.py`` calls on every final answer, injected correct, random and
    landmine answers included): the coin hits a step where an inner
    :class:`~dg_envs.wrappers.RareDiscovery` fired as it hits any other. The reference's
    precedence correct > random > bug > sample orders the injections only, not the reward
    coin. Pass ``spare_discoveries=True`` to keep the clean reward of a discovery step
    (``"discovery"`` in ``info["frictions"]``).

    ``terminal_only=True`` corrupts only the reward of the step that ends an episode: for
    tasks whose reward comes at the end (token reversal's sequence reward), where the paper
    replaces the *answer's* reward and a coin on every zero intermediate reward would not be
    the same friction. Arguments: :class:`RewardCorruptionSpec`. A vector version exists:
    :class:`dg_envs.wrappers.vector.RewardCorruption`.

    Example:
        >>> import gymnasium as gym
        >>> from dg_envs.wrappers import RewardCorruption
        >>> env = RewardCorruption(gym.make("CartPole-v1"), p=1.0, mode="sign_flip")
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(0)
        >>> reward, info["true_reward"], info["frictions"]
        (-1.0, 1.0, ['reward_corruption'])
    """

    spec_class = RewardCorruptionSpec
    replaces_action = False

    def _bind(self) -> None:
        try:
            reward_range = self.env.get_wrapper_attr("reward_range")
        except AttributeError:
            reward_range = None
        self.low, self.high = self.friction_spec.coin_bounds(reward_range)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        result = self.env.step(action)
        if self.terminal_only and not (result[2] or result[3]):
            return result
        if not self._fires():
            return result
        obs, reward, terminated, truncated, info = result
        if self.spare_discoveries and DISCOVERY in info.get(FRICTIONS, ()):
            return result
        corrupted = float(corrupt(self.mode, float(reward), self.rng, self.low, self.high, self.noise_std))
        info = dict(info)
        record_friction(info, self._names)
        record_reward_change(info, reward, changed=corrupted != float(reward))
        return obs, corrupted, terminated, truncated, info


def _vector_reward_range(env: Any) -> Any:
    """A ``reward_range`` on the vector stack, else on the first sub-env of a ``SyncVectorEnv``, else None."""
    layer: Any = env
    while True:
        if hasattr(layer, "reward_range"):
            return layer.reward_range
        if not isinstance(layer, VectorWrapper):
            break
        layer = layer.env
    if isinstance(layer, SyncVectorEnv) and layer.envs and layer.envs[0].has_wrapper_attr("reward_range"):
        return layer.envs[0].get_wrapper_attr("reward_range")
    return None


class VectorRewardCorruption(VectorFriction):
    """:class:`~dg_envs.wrappers.RewardCorruption` around a Gymnasium ``VectorEnv``, batched.

    The same friction (:class:`~dg_envs.wrappers.reward_corruption.RewardCorruptionSpec`) sub-env
    by sub-env: ``info["true_reward"]`` (with its mask ``info["_true_reward"]``) where the reward
    changed. With ``spare_discoveries=True`` a sub-env where an inner discovery fired keeps its
    clean reward, as per env.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> from dg_envs.wrappers import vector
        >>> envs = vector.RewardCorruption(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"),
        ...                                p=1.0, mode="sign_flip")
        >>> _ = envs.reset(seed=0)
        >>> _, rewards, _, _, info = envs.step(np.zeros(2, dtype=np.int64))
        >>> rewards, info["true_reward"], info["_true_reward"]
        (array([-1., -1.]), array([1., 1.]), array([ True,  True]))
    """

    spec_class = RewardCorruptionSpec
    replaces_action = False

    def _bind(self) -> None:
        self.low, self.high = self.friction_spec.coin_bounds(_vector_reward_range(self.env))

    def _step_record(self, actions: Any) -> tuple[Any, Any, Any, Any, VectorStepRecord]:
        firing = self._fires()  # drawn before the inner step: never on a sub-env's reset step
        obs, rewards, terminated, truncated, record = self._inner_step(actions)
        fired = None if firing is None else firing[0]
        if fired is not None and self.terminal_only:
            fired = fired & record.dones if record.any_done else None
        if fired is not None and self.spare_discoveries:
            discovered = record.fired(DISCOVERY)
            fired = fired if discovered is None else fired > discovered  # fired and not discovered
        if fired is not None and np.count_nonzero(fired):
            rewards = np.array(rewards, dtype=np.float64)  # a copy: the inner env's array is left alone
            clean = rewards[fired]
            corrupted = corrupt(self.mode, clean, self.rng, self.low, self.high, self.noise_std, size=len(clean))
            rewards[fired] = corrupted
            changed = fired.copy()
            changed[fired] = corrupted != clean
            record.change_rewards(changed, clean[changed[fired]], self._names, fired)
        self._obs = obs
        self._end_step(record)
        return obs, rewards, terminated, truncated, record
