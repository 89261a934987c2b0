"""Tabular bandits from the DG paper: one context with K arms, and N contexts with K arms each.

Both are one-step episodic environments (reset -> one step -> terminated), so that an
on-policy SB3 algorithm sees every pull as a complete episode and the advantage is simply
reward minus baseline. Each has a NumPy-batched vector version (:class:`KArmedBanditVectorEnv`,
:class:`ContextualBanditVectorEnv`), the ids' ``vector_entry_point``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from dg_envs.envs.actions import discrete_action
from dg_envs.envs.rendering import values_to_rgb
from dg_envs.envs.vector import FixedLengthVectorEnv, IntegerDraws, batched_info, normal_draws, uniform_draws
from dg_envs.validation import check_choice, check_int, check_real

__all__ = ["KArmedBanditEnv", "ContextualBanditEnv", "KArmedBanditVectorEnv", "ContextualBanditVectorEnv"]

_REWARD_DISTS = ("bernoulli", "gaussian")


def _check_reward_dist(reward_dist: str, noise_std: float) -> float:
    check_choice(reward_dist, "reward_dist", _REWARD_DISTS)
    return check_real(noise_std, "noise_std", low=0.0)


def _check_means(means: Any, shape: tuple[int, ...], reward_dist: str) -> np.ndarray:
    try:
        arr = np.array(means, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # strings, ragged lists, objects
        raise ValueError(f"means must be an array of real numbers of shape {shape}, got {means!r}") from exc
    if arr.shape != shape:
        raise ValueError(f"means must have shape {shape}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("means must be finite")
    if reward_dist == "bernoulli" and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError("means must lie in [0, 1] when reward_dist='bernoulli'")
    return arr


def _draw_reward(rng: np.random.Generator, mean: float, reward_dist: str, noise_std: float) -> float:
    if reward_dist == "bernoulli":
        # Means of exactly 0 or 1 (the paper's one-correct-arm setting) need no random draw:
        # the reward is deterministic and the RNG stream is left untouched.
        if mean >= 1.0:
            return 1.0
        if mean <= 0.0:
            return 0.0
        return float(rng.random() < mean)
    if noise_std == 0.0:
        return mean
    return mean + noise_std * float(rng.standard_normal())


def _checked_arm(action, n_arms: int, done: bool) -> int:
    """The pulled arm as an int, after checking the episode is live and the arm exists."""
    if done:
        raise RuntimeError("the episode is over: call reset() before step()")
    return discrete_action(action, n_arms)


class KArmedBanditEnv(gym.Env):
    """A K-armed bandit played as one-step episodes.

    ## Description
    The DG paper's tabular bandit with a single context: the agent pulls one of ``n_arms``
    arms and the episode ends. By default exactly one arm is correct and the reward is
    ``1{action == correct_arm}`` (deterministic), the setting of the paper's K=100 experiment.
    Arbitrary Bernoulli or Gaussian arms can be given with ``means``.

    ## Action Space
    ``Discrete(n_arms)``: the arm to pull, an integer in [0, n_arms) (Python or NumPy integer,
    or an integer array of shape ``()`` or ``(1,)``); anything else (``1.7``, ``"1"``, ``-1``)
    raises ``ValueError`` rather than being truncated to an arm.

    ## Observation Space
    ``Box(0, 1, (1,), float32)``, always ``[0.]``: there is a single context, and the constant
    observation only exists so that SB3's MLP policies accept the environment.

    ## Reward
    Bernoulli arms: ``1`` with probability ``means[action]`` else ``0`` (means of exactly 0 or 1
    draw nothing). Gaussian arms: ``means[action] + noise_std * N(0, 1)``.

    ## Episode End
    Terminated after the single step (never truncated). Stepping again before ``reset`` raises
    ``RuntimeError``.

    ## Arguments
    - ``n_arms`` (int >= 1, default 10): number of arms K.
    - ``reward_dist`` (``"bernoulli"`` | ``"gaussian"``, default ``"bernoulli"``).
    - ``means`` (array of shape ``(n_arms,)``, optional): arm means; in [0, 1] for Bernoulli.
    - ``correct_arm`` (int in [0, n_arms), optional): shorthand for one-hot ``means``.
      If neither ``means`` nor ``correct_arm`` is given, ``correct_arm=0``.
    - ``noise_std`` (float >= 0, default 1.0): Gaussian noise scale (ignored for Bernoulli).
    - ``render_mode`` (``None`` | ``"ansi"`` | ``"rgb_array"``: the arms' means in grey, the
      last pull in red).

    ``info`` after the step holds ``"mean_reward"`` (the pulled arm's mean) and ``"regret"``
    (best mean minus that mean). ``optimal_action()`` returns the arm with the largest mean
    (the lowest index on ties).

    ## Version History
    - v0: initial version; a NumPy-batched vector version, :class:`KArmedBanditVectorEnv`, is the
      id's ``vector_entry_point``.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> env = gym.make("dg_envs/KArmedBandit-v0", n_arms=5, correct_arm=3)
        >>> obs, info = env.reset(seed=0)
        >>> obs
        array([0.], dtype=float32)
        >>> env.unwrapped.optimal_action()
        3
        >>> _, reward, terminated, truncated, info = env.step(3)
        >>> reward, terminated, truncated, info["regret"]
        (1.0, True, False, 0.0)
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        n_arms: int = 10,
        reward_dist: str = "bernoulli",
        means: Any = None,
        correct_arm: int | None = None,
        noise_std: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        self.n_arms = check_int(n_arms, "n_arms", low=1)
        self.reward_dist = reward_dist
        self.noise_std = _check_reward_dist(reward_dist, noise_std)
        if means is not None and correct_arm is not None:
            raise ValueError("give either means or correct_arm, not both")
        if means is None:
            correct_arm = 0 if correct_arm is None else correct_arm
            if (
                isinstance(correct_arm, bool)
                or not isinstance(correct_arm, (int, np.integer))
                or not 0 <= correct_arm < self.n_arms
            ):
                raise ValueError(f"correct_arm must be an integer in [0, {self.n_arms}), got {correct_arm!r}")
            self.means = np.zeros(self.n_arms)
            self.means[correct_arm] = 1.0
        else:
            self.means = _check_means(means, (self.n_arms,), reward_dist)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode

        self.action_space = spaces.Discrete(self.n_arms)
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self._best_arm = int(np.argmax(self.means))
        self._best_mean = float(self.means[self._best_arm])
        self._means_list = self.means.tolist()  # python floats: cheap per-step indexing
        self._done = True
        self._last: tuple[int, float] | None = None

    def optimal_action(self) -> int:
        """The arm with the largest mean (what an oracle pulls)."""
        return self._best_arm

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._done = False
        self._last = None
        return np.zeros(1, np.float32), {}

    def step(self, action):
        a = _checked_arm(action, self.n_arms, self._done)
        mean = self._means_list[a]
        reward = _draw_reward(self.np_random, mean, self.reward_dist, self.noise_std)
        self._done = True
        self._last = (a, reward)
        info = {"mean_reward": mean, "regret": self._best_mean - mean}
        return np.zeros(1, np.float32), reward, True, False, info

    def render(self):
        if self.render_mode == "rgb_array":
            pulled = None if self._last is None else (0, self._last[0])
            return values_to_rgb(np.asarray(self._means_list)[None, :], highlight=pulled)
        if self.render_mode != "ansi":
            return None
        if self._last is None:
            return f"{self.n_arms}-armed bandit, best arm {self._best_arm}: waiting for a pull\n"
        a, r = self._last
        return f"{self.n_arms}-armed bandit, best arm {self._best_arm}: pulled {a}, reward {r:g}\n"


class ContextualBanditEnv(gym.Env):
    """N contexts x K arms, one-step episodes: the DG paper's many-context tabular bandit.

    ## Description
    At reset a context is drawn uniformly from ``n_contexts``; the agent pulls one of ``n_arms``
    arms and the episode ends. By default each context has exactly one correct arm and the
    reward is ``1{action == correct_arms[context]}``. The paper uses N=100 x K=10; the default
    here is the smaller N=10 x K=10 so that tests and demos learn in seconds (pass
    ``n_contexts=100`` for the paper's setting).

    The correct arms are a fixed table: given as ``correct_arms`` or drawn once at
    construction from ``np.random.default_rng(table_seed)``; they do not change with
    ``reset(seed=...)``, which only seeds the context draws (and Bernoulli/Gaussian noise).

    ## Action Space
    ``Discrete(n_arms)``, checked as in :class:`KArmedBanditEnv`.

    ## Observation Space
    ``Box(0, 1, (n_contexts,), float32)``: the one-hot encoding of the current context (built
    per step, so memory stays linear in ``n_contexts``).

    ## Reward
    As :class:`KArmedBanditEnv`, with the arm means of the current context
    (``means[context, action]``).

    ## Episode End
    Terminated after the single step (never truncated). Stepping again before ``reset`` raises
    ``RuntimeError``.

    ## Arguments
    - ``n_contexts`` (int >= 1, default 10), ``n_arms`` (int >= 1, default 10).
    - ``correct_arms`` (ints in [0, n_arms), shape ``(n_contexts,)``, optional).
    - ``table_seed`` (int, default 0): seeds the correct-arm table when ``correct_arms`` is absent.
    - ``means`` (array ``(n_contexts, n_arms)``, optional): general arm means instead of a
      correct-arm table (exclusive with ``correct_arms``).
    - ``reward_dist``, ``noise_std``, ``render_mode``: as :class:`KArmedBanditEnv`.

    ``reset`` info holds ``"context"`` (already visible in the observation); step info holds
    ``"context"``, ``"mean_reward"`` and ``"regret"``. ``optimal_action()`` returns the best arm
    of the current context.

    ## Version History
    - v0: initial version; a NumPy-batched vector version, :class:`ContextualBanditVectorEnv`, is the
      id's ``vector_entry_point``.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> env = gym.make("dg_envs/ContextualBandit-v0", n_contexts=3, n_arms=4, correct_arms=[2, 0, 1])
        >>> obs, info = env.reset(seed=1)
        >>> int(obs.argmax()) == info["context"]
        True
        >>> best = env.unwrapped.optimal_action()
        >>> best == [2, 0, 1][info["context"]]
        True
        >>> env.step(best)[1]
        1.0
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        n_contexts: int = 10,
        n_arms: int = 10,
        correct_arms: Any = None,
        table_seed: int = 0,
        means: Any = None,
        reward_dist: str = "bernoulli",
        noise_std: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        self.n_contexts = check_int(n_contexts, "n_contexts", low=1)
        self.n_arms = check_int(n_arms, "n_arms", low=1)
        self.reward_dist = reward_dist
        self.noise_std = _check_reward_dist(reward_dist, noise_std)
        self.table_seed = check_int(table_seed, "table_seed", low=0)
        if means is not None and correct_arms is not None:
            raise ValueError("give either means or correct_arms, not both")
        if means is None:
            if correct_arms is None:
                arms = np.random.default_rng(self.table_seed).integers(0, self.n_arms, size=self.n_contexts)
            else:
                try:
                    arms = np.asarray(correct_arms)
                except (TypeError, ValueError):  # ragged lists: reported below like any other bad table
                    arms = np.asarray(None)
                if (
                    arms.shape != (self.n_contexts,)
                    or not np.issubdtype(arms.dtype, np.integer)
                    or arms.min() < 0
                    or arms.max() >= self.n_arms
                ):
                    raise ValueError(
                        f"correct_arms must be {self.n_contexts} integers in [0, {self.n_arms}), got {correct_arms!r}"
                    )
            self.correct_arms = arms.astype(np.int64)
            self.means = np.zeros((self.n_contexts, self.n_arms))
            self.means[np.arange(self.n_contexts), self.correct_arms] = 1.0
        else:
            self.means = _check_means(means, (self.n_contexts, self.n_arms), reward_dist)
            self.correct_arms = np.argmax(self.means, axis=1).astype(np.int64)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode

        self.action_space = spaces.Discrete(self.n_arms)
        self.observation_space = spaces.Box(0.0, 1.0, (self.n_contexts,), np.float32)
        self._means_list = self.means.tolist()
        self._best_means = self.means.max(axis=1).tolist()
        self._best_arms = self.correct_arms.tolist()
        self.context = 0
        self._done = True
        self._last: tuple[int, float] | None = None

    def optimal_action(self) -> int:
        """The best arm of the current context (what an oracle pulls)."""
        return self._best_arms[self.context]

    def _one_hot(self, context: int) -> np.ndarray:
        # Built from the index: an identity-matrix lookup table would need n_contexts**2 floats.
        obs = np.zeros(self.n_contexts, np.float32)
        obs[context] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.context = int(self.np_random.integers(self.n_contexts))
        self._done = False
        self._last = None
        return self._one_hot(self.context), {"context": self.context}

    def step(self, action):
        a = _checked_arm(action, self.n_arms, self._done)
        c = self.context
        mean = self._means_list[c][a]
        reward = _draw_reward(self.np_random, mean, self.reward_dist, self.noise_std)
        self._done = True
        self._last = (a, reward)
        info = {"context": c, "mean_reward": mean, "regret": self._best_means[c] - mean}
        return self._one_hot(c), reward, True, False, info

    def render(self):
        if self.render_mode == "rgb_array":
            pulled = None if self._last is None else (self.context, self._last[0])
            return values_to_rgb(self.means, highlight=pulled)
        if self.render_mode != "ansi":
            return None
        head = f"context {self.context}/{self.n_contexts}, best arm {self._best_arms[self.context]}"
        if self._last is None:
            return head + ": waiting for a pull\n"
        a, r = self._last
        return head + f": pulled {a}, reward {r:g}\n"


def _rewards_are_random(means: np.ndarray, reward_dist: str, noise_std: float) -> bool:
    """Whether :func:`_draw_reward` ever draws for these means (Bernoulli means strictly in (0, 1), Gaussian noise)."""
    if reward_dist == "bernoulli":
        return bool(np.any((means > 0.0) & (means < 1.0)))
    return noise_std > 0.0


class _BanditVectorEnv(FixedLengthVectorEnv):
    """What the two bandit vectors share: one-step episodes and :func:`_draw_reward`, batched.

    Reward draws come from each sub-env's own generator, in the single env's order.
    """

    def __init__(self, template, num_envs, group_size, autoreset_mode, interleaved: bool) -> None:
        super().__init__(template, 1, num_envs, group_size, autoreset_mode)
        self.n_arms, self.means = template.n_arms, template.means
        self.reward_dist, self.noise_std = template.reward_dist, template.noise_std
        self._random_rewards = _rewards_are_random(self.means, self.reward_dist, self.noise_std)
        draws = normal_draws if self.reward_dist == "gaussian" else uniform_draws
        self._reward_draws = self._random_blocks(draws, per_group=False, interleaved=interleaved)

    def _rewards(self, mean: np.ndarray) -> np.ndarray:
        """The batched :func:`_draw_reward` for the pulled arms' means (a fresh float64 array)."""
        if not self._random_rewards:  # means of 0 or 1, or noise_std=0: no draw, as in the single env
            return mean.astype(np.float64) if self.reward_dist == "gaussian" else (mean >= 1.0).astype(np.float64)
        if self.reward_dist == "gaussian":
            return mean + self.noise_std * self._reward_draws.take()
        reward = (mean >= 1.0).astype(np.float64)
        drawn = (mean > 0.0) & (mean < 1.0)
        reward[drawn] = self._reward_draws.take(drawn) < mean[drawn]
        return reward


class KArmedBanditVectorEnv(_BanditVectorEnv):
    """``num_envs`` copies of :class:`KArmedBanditEnv` stepped as NumPy arrays.

    ## Description
    The native vector version of ``dg_envs/KArmedBandit-v0`` (its ``vector_entry_point``): the
    same per-sub-env trajectories, for the same seeds and actions, as ``SyncVectorEnv`` of the
    single env (sub-env ``i`` is seeded ``seed + i``), in both autoreset modes, computed with
    array operations instead of a Python loop over sub-envs. Bernoulli and Gaussian reward
    draws are pre-drawn in blocks from each sub-env's generator (see :mod:`dg_envs.envs.vector`).
    A K-armed bandit has no per-episode draw, so ``group_size`` only checks ``num_envs``.

    ## Action Space
    ``MultiDiscrete([n_arms] * num_envs)``: an integer array of shape ``(num_envs,)`` with
    values in [0, n_arms); anything else raises ``ValueError`` naming ``actions``.

    ## Observation Space
    ``Box(0, 1, (num_envs, 1), float32)``, all zeros.

    ## Reward
    Per sub-env as :class:`KArmedBanditEnv`; float64 array of shape ``(num_envs,)``.

    ## Episode End
    Every step terminates every sub-env's episode. ``NEXT_STEP`` (default): the following
    step ignores its actions, starts new episodes and returns reward 0, not terminated.
    ``SAME_STEP``: the terminating step returns the new episodes' observations and
    ``info["final_obs"]``, ``info["final_info"]``.

    ## Arguments
    ``num_envs`` (int >= 1), ``autoreset_mode`` (``AutoresetMode.NEXT_STEP`` | ``SAME_STEP``),
    ``group_size`` (int >= 1 dividing ``num_envs``), and those of :class:`KArmedBanditEnv`,
    validated by it; ``render_mode`` must be None.
    Step ``info`` holds ``"mean_reward"`` and ``"regret"`` with their ``"_"`` masks;
    ``optimal_action()`` is the best arm for each sub-env, shape ``(num_envs,)``.

    ## Version History
    - v0: initial version.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> import dg_envs
        >>> envs = gym.make_vec("dg_envs/KArmedBandit-v0", num_envs=3, vectorization_mode="vector_entry_point",
        ...                     n_arms=5, correct_arm=3)
        >>> obs, info = envs.reset(seed=0)
        >>> obs.shape, envs.optimal_action()
        ((3, 1), array([3, 3, 3]))
        >>> _, reward, terminated, truncated, info = envs.step(np.array([3, 0, 3]))
        >>> reward, terminated, info["regret"]
        (array([1., 0., 1.]), array([ True,  True,  True]), array([0., 1., 0.]))
    """

    def __init__(
        self,
        num_envs: int = 1,
        n_arms: int = 10,
        reward_dist: str = "bernoulli",
        means: Any = None,
        correct_arm: int | None = None,
        noise_std: float = 1.0,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        group_size: int = 1,
    ) -> None:
        self._check_render_mode(render_mode)
        template = KArmedBanditEnv(n_arms, reward_dist, means, correct_arm, noise_std)
        # No reset draws: the reward draws never interleave with another kind.
        super().__init__(template, num_envs, group_size, autoreset_mode, interleaved=False)
        self._best_mean = template._best_mean

    def optimal_action(self) -> np.ndarray:
        """The arm with the largest mean, for every sub-env."""
        return np.full(self.num_envs, self.template.optimal_action())

    def _start_episodes(self):
        return np.zeros((self.num_envs, 1), np.float32), {}

    def _advance(self, actions, t):
        mean = self.means[actions]
        info = batched_info(self.num_envs, mean_reward=mean, regret=self._best_mean - mean)
        return np.zeros((self.num_envs, 1), np.float32), self._rewards(mean), info


class ContextualBanditVectorEnv(_BanditVectorEnv):
    """``num_envs`` copies of :class:`ContextualBanditEnv` stepped as NumPy arrays.

    ## Description
    The native vector version of ``dg_envs/ContextualBandit-v0`` (its ``vector_entry_point``):
    the same per-sub-env trajectories as ``SyncVectorEnv`` of the single env for the same
    seeds and actions, in both autoreset modes. Contexts are pre-drawn in blocks of episodes
    from each generator; with ``group_size=K`` the K sub-envs of a group see the same context
    each episode (drawn from the group's first sub-env's generator). With random rewards
    (Bernoulli means strictly between 0 and 1, or Gaussian ``noise_std > 0``) a generator
    alternates context and reward draws, so every draw is made on its own (a per-sub-env
    loop, slower); the default one-correct-arm table is fully batched.

    ## Action Space
    ``MultiDiscrete([n_arms] * num_envs)``: an integer array of shape ``(num_envs,)``.

    ## Observation Space
    ``Box(0, 1, (num_envs, n_contexts), float32)``: one one-hot context per sub-env.

    ## Reward
    Per sub-env as :class:`ContextualBanditEnv`; float64 array of shape ``(num_envs,)``.

    ## Episode End
    As :class:`KArmedBanditVectorEnv`: one-step episodes, ``NEXT_STEP`` or ``SAME_STEP`` autoreset.

    ## Arguments
    ``num_envs``, ``autoreset_mode``, ``group_size`` as :class:`KArmedBanditVectorEnv`, and those
    of :class:`ContextualBanditEnv`, validated by it; ``render_mode`` must be None.
    Reset ``info`` holds ``"context"``; step ``info`` holds ``"context"``, ``"mean_reward"``,
    ``"regret"``; each with its ``"_"`` mask. ``context`` (shape ``(num_envs,)``) is the current
    contexts and ``optimal_action()`` their best arms.

    ## Version History
    - v0: initial version.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> envs = gym.make_vec("dg_envs/ContextualBandit-v0", num_envs=4, vectorization_mode="vector_entry_point",
        ...                     n_contexts=3, n_arms=4, correct_arms=[2, 0, 1], group_size=2)
        >>> obs, info = envs.reset(seed=1)
        >>> bool((obs.argmax(axis=1) == info["context"]).all()), info["context"][0] == info["context"][1]
        (True, np.True_)
        >>> envs.step(envs.optimal_action())[1]
        array([1., 1., 1., 1.])
    """

    def __init__(
        self,
        num_envs: int = 1,
        n_contexts: int = 10,
        n_arms: int = 10,
        correct_arms: Any = None,
        table_seed: int = 0,
        means: Any = None,
        reward_dist: str = "bernoulli",
        noise_std: float = 1.0,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        group_size: int = 1,
    ) -> None:
        self._check_render_mode(render_mode)
        template = ContextualBanditEnv(n_contexts, n_arms, correct_arms, table_seed, means, reward_dist, noise_std)
        interleaved = _rewards_are_random(template.means, template.reward_dist, template.noise_std)
        super().__init__(template, num_envs, group_size, autoreset_mode, interleaved)
        self.n_contexts, self.correct_arms = template.n_contexts, template.correct_arms
        self._best_means = self.means.max(axis=1)
        self._context_draws = self._random_blocks(
            IntegerDraws(self.n_contexts), per_group=True, dtype=np.int64, interleaved=interleaved
        )
        self.context = np.zeros(self.num_envs, dtype=np.int64)
        self._obs = np.zeros((self.num_envs, self.n_contexts), np.float32)

    def optimal_action(self) -> np.ndarray:
        """The best arm of each sub-env's current context."""
        return self.correct_arms[self.context]

    def _start_episodes(self):
        self.context = self._per_group(self._context_draws.take())
        self._obs = np.zeros((self.num_envs, self.n_contexts), np.float32)
        self._obs[np.arange(self.num_envs), self.context] = 1.0
        return self._obs.copy(), batched_info(self.num_envs, context=self.context.copy())

    def _advance(self, actions, t):
        c = self.context
        mean = self.means[c, actions]
        info = batched_info(self.num_envs, context=c.copy(), mean_reward=mean, regret=self._best_means[c] - mean)
        return self._obs.copy(), self._rewards(mean), info
