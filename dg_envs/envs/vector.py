"""The shared machinery of the native vector environments: lockstep episodes, seeding, pre-drawn randomness.

Every dg_envs task has fixed-length episodes (one step for the bandits and MNIST, ``length``
steps for token reversal), so all sub-environments of a vector start, step and end together.
:class:`FixedLengthVectorEnv` holds that shared clock, the two Gymnasium autoreset modes, the
batched action check and the seeding; a task subclass only says how a batch of episodes
starts (:meth:`~FixedLengthVectorEnv._start_episodes`) and how a batch of actions is
scored (:meth:`~FixedLengthVectorEnv._advance`).

**Same draws as the single env.** Sub-env ``i`` owns a generator seeded exactly as the single
env seeds its ``np_random`` (``reset(seed=s)`` gives sub-env ``i`` the seed ``s + i``, as
``SyncVectorEnv`` does). A NumPy generator's block draw equals the same number of successive
draws (``g.random(256)`` is 256 calls of ``g.random()``), so :class:`RandomBlocks` draws each
generator's next 256 values in one call and hands them out row-wise, vectorised: a Python
loop over sub-envs runs once every 256 episodes, not every step. Where one generator serves
two kinds of draws that alternate (a contextual bandit with random rewards: a context at
reset, reward noise at step) block draws cannot keep the interleaving; those settings use
blocks of one draw, which is a per-sub-env loop on every draw (the documented fallback).

**Groups.** With ``group_size=K`` the consecutive sub-envs ``gK .. gK+K-1`` share the
per-episode draw (prompt, image, context) of their first member's generator; the per-step
draws (reward noise) stay per sub-env. ``group_size=1`` is the plain env.

>>> import gymnasium as gym
>>> import dg_envs
>>> envs = gym.make_vec("dg_envs/TokenReversal-v0", num_envs=4, vectorization_mode="vector_entry_point",
...                     length=3, group_size=2)
>>> _ = envs.reset(seed=0)
>>> bool((envs.prompt[0] == envs.prompt[1]).all()), envs.metadata["autoreset_mode"].value
(True, 'NextStep')
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dg_envs.envs.actions import discrete_actions
from dg_envs.validation import check_int

__all__ = [
    "AUTORESET_MODES",
    "FixedLengthVectorEnv",
    "IntegerDraws",
    "RandomBlocks",
    "batched_info",
    "normal_draws",
    "uniform_draws",
]

#: The autoreset modes the vector envs implement (Gymnasium's default first).
AUTORESET_MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)

#: Pre-drawn values per row (episodes or pulls ahead), unless that would exceed
#: ``_BLOCK_VALUES`` numbers in all (a long prompt times many sub-envs).
_BLOCK_SIZE = 256
_BLOCK_VALUES = 2**22


def batched_info(num_envs: int, **values: np.ndarray) -> dict[str, np.ndarray]:
    """Gymnasium's vector ``info`` for values every sub-env reports: ``info[key]`` and the mask ``info["_" + key]``.

    >>> batched_info(2, label=np.array([3, 1]))
    {'label': array([3, 1]), '_label': array([ True,  True])}
    """
    info: dict[str, np.ndarray] = {}
    for key, value in values.items():
        info[key] = value
        info["_" + key] = np.ones(num_envs, dtype=np.bool_)
    return info


class RandomBlocks:
    """The coming draws of one kind from each of ``n_rows`` generators, drawn a block at a time.

    Row ``r`` holds the values that generator ``r`` would produce next, in order; ``take``
    hands out the next value of every selected row at once and refills a row (one call of
    ``draw(generator, block_size)``) only when its block is used up. ``draw`` must return an
    array of shape ``(block_size, *event_shape)`` whose rows equal ``block_size`` successive
    single draws; ``block_size=1`` draws every value at the moment it is needed.

    >>> blocks = RandomBlocks(lambda rng, size: rng.random(size), n_rows=2, block_size=4)
    >>> blocks.attach([np.random.default_rng(0), np.random.default_rng(1)], rows=[0, 1])
    >>> first = blocks.take()
    >>> bool(first[0] == np.random.default_rng(0).random())
    True
    """

    def __init__(
        self,
        draw: Callable[[np.random.Generator, int], np.ndarray],
        n_rows: int,
        event_shape: tuple[int, ...] = (),
        dtype: Any = np.float64,
        block_size: int | None = None,
    ) -> None:
        if block_size is None:
            block_size = max(1, min(_BLOCK_SIZE, _BLOCK_VALUES // (n_rows * max(1, int(np.prod(event_shape))))))
        self.draw = draw
        self.block_size = block_size
        self.block = np.zeros((n_rows, block_size, *event_shape), dtype=dtype)
        self.cursor = np.full(n_rows, block_size)  # next unused value of each row; block_size = used up
        self.generators: list[np.random.Generator | None] = [None] * n_rows
        self._all_rows = np.arange(n_rows)

    def attach(self, generators: Sequence[np.random.Generator], rows: Sequence[int]) -> None:
        """Give the listed rows their (new) generator, dropping what was drawn from the old one."""
        for r in rows:
            self.generators[r] = generators[r]
            self.cursor[r] = self.block_size

    def take(self, mask: np.ndarray | None = None) -> np.ndarray:
        """The next value of every row (or of the rows where ``mask`` is True), in row order."""
        rows = self._all_rows if mask is None else np.flatnonzero(mask)
        for r in rows[self.cursor[rows] == self.block_size].tolist():  # once per block_size draws of a row
            self.block[r] = self.draw(self.generators[r], self.block_size)
            self.cursor[r] = 0
        cursor = self.cursor[rows]
        self.cursor[rows] = cursor + 1
        return self.block[rows, cursor]


class FixedLengthVectorEnv(VectorEnv):
    """Base of the native vector envs: ``num_envs`` lockstep copies of a fixed-length episodic task.

    A subclass builds the single env from its arguments (the ``template``: it validates them
    and holds the spaces and tables; it is never stepped), passes it here with the episode
    length, creates its :class:`RandomBlocks` with :meth:`_random_blocks`, and implements
    :meth:`_start_episodes` and :meth:`_advance`. This class provides ``reset``/``step`` with
    Gymnasium's ``NEXT_STEP`` or ``SAME_STEP`` autoreset (``metadata["autoreset_mode"]``),
    the batched action check and ``SyncVectorEnv``'s seeding.
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        template: gym.Env,
        episode_length: int,
        num_envs: int,
        group_size: int,
        autoreset_mode: AutoresetMode | str,
    ) -> None:
        self.template = template
        self.episode_length = episode_length
        self.num_envs = check_int(num_envs, "num_envs", low=1)
        self.group_size = check_int(group_size, "group_size", low=1)
        if self.num_envs % self.group_size:
            raise ValueError(
                f"num_envs must be a multiple of group_size, got num_envs={self.num_envs}, group_size={self.group_size}"
            )
        self.num_groups = self.num_envs // self.group_size
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            mode = None
        if mode not in AUTORESET_MODES:
            accepted = ", ".join(str(m) for m in AUTORESET_MODES)
            raise ValueError(f"autoreset_mode must be one of {accepted}; got {autoreset_mode!r}")
        self.autoreset_mode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.render_mode = None

        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self._generators: list[np.random.Generator | None] = [None] * self.num_envs
        self._blocks: list[tuple[RandomBlocks, bool]] = []
        self._t: int | None = None  # steps taken in the current episodes; None before the first reset
        self._zeros = np.zeros(self.num_envs)
        self._false = np.zeros(self.num_envs, dtype=np.bool_)

    @staticmethod
    def _check_render_mode(render_mode: str | None) -> None:
        if render_mode is not None:
            raise ValueError(
                f"render_mode must be None for the vector env, got {render_mode!r}: render a single env, or "
                "use gym.make_vec(..., vectorization_mode='sync', render_mode=...)"
            )

    # -- the two hooks of a task ---------------------------------------------------------------
    def _start_episodes(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in every sub-env; return the observations and the reset ``info``."""
        raise NotImplementedError

    def _advance(self, actions: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply step ``t`` (0-based) of the current episodes; return observations, rewards (float64) and ``info``."""
        raise NotImplementedError

    # -- randomness ----------------------------------------------------------------------------
    def _random_blocks(
        self,
        draw: Callable[[np.random.Generator, int], np.ndarray],
        per_group: bool,
        event_shape: tuple[int, ...] = (),
        dtype: Any = np.float64,
        interleaved: bool = False,
    ) -> RandomBlocks:
        """Blocks of one kind of draw: one row per group (from its first member's generator) or per sub-env.

        ``interleaved=True`` when the same generators also serve another kind of draw in between:
        then each value is drawn when needed (blocks of one), which keeps the single env's order.
        """
        n_rows = self.num_groups if per_group else self.num_envs
        blocks = RandomBlocks(draw, n_rows, event_shape, dtype, block_size=1 if interleaved else None)
        self._blocks.append((blocks, per_group))
        return blocks

    def _per_group(self, values: np.ndarray) -> np.ndarray:
        """One row per group -> one row per sub-env (each group's row repeated ``group_size`` times)."""
        return values if self.group_size == 1 else np.repeat(values, self.group_size, axis=0)

    def _seed(self, seed: int | Sequence[int | None] | None) -> None:
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = [None if s is None else int(s) if isinstance(s, np.integer) else s for s in seed]
            if len(seeds) != n:
                raise ValueError(f"seed must be None, an int or a list of {n} ints or None, got {len(seeds)} seeds")
        # A None seed keeps the sub-env's generator (and what was drawn from it), as in SyncVectorEnv.
        changed = [i for i, s in enumerate(seeds) if s is not None or self._generators[i] is None]
        for i in changed:
            self._generators[i] = seeding.np_random(seeds[i])[0]
        k = self.group_size
        leaders = self._generators[::k]
        for blocks, per_group in self._blocks:
            if per_group:
                blocks.attach(leaders, [i // k for i in changed if i % k == 0])
            else:
                blocks.attach(self._generators, changed)

    # -- the VectorEnv API -----------------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes in every sub-env; ``seed`` as in ``SyncVectorEnv`` (sub-env ``i`` gets ``seed + i``).

        ``options`` are ignored, as by the single envs, except ``reset_mask``: the sub-envs'
        episodes are synchronised, so a mask selecting every sub-env is a full reset (what an
        adapter that resets finished sub-envs asks for, since they all finish together) and a
        partial one raises ``ValueError``.
        """
        mask = None if not options else options.get("reset_mask")
        if mask is not None and not (np.shape(mask) == (self.num_envs,) and np.all(mask)):
            raise ValueError(
                f"options['reset_mask'] must select every sub-env (episodes are synchronised), got {mask!r}"
            )
        self._seed(seed)
        self._t = 0
        return self._start_episodes()

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every sub-env; ``actions`` is an integer array of shape ``(num_envs,)``."""
        if self._t is None:
            raise RuntimeError("call reset() before step()")
        actions = discrete_actions(actions, self.single_action_space.n, self.num_envs)
        if self._t == self.episode_length:  # NEXT_STEP: the last step ended every episode, so this one resets
            self._t = 0
            obs, info = self._start_episodes()
            return obs, self._zeros.copy(), self._false.copy(), self._false.copy(), info
        obs, rewards, info = self._advance(actions, self._t)
        self._t += 1
        terminated = np.full(self.num_envs, self._t == self.episode_length)
        if self._t == self.episode_length and self.autoreset_mode == AutoresetMode.SAME_STEP:
            final = {"final_obs": np.fromiter(obs, dtype=object, count=self.num_envs), "final_info": info}
            self._t = 0
            obs, reset_info = self._start_episodes()
            info = {**batched_info(self.num_envs, **final), **reset_info}
        return obs, rewards, terminated, self._false.copy(), info

    def close_extras(self, **kwargs: Any) -> None:
        self.template.close()


def uniform_draws(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` successive ``rng.random()`` values (picklable, for :class:`RandomBlocks`)."""
    return rng.random(size)


def normal_draws(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` successive ``rng.standard_normal()`` values."""
    return rng.standard_normal(size)


class IntegerDraws:
    """``size`` successive ``rng.integers(0, high, size=shape, dtype=int64)`` draws, stacked (picklable)."""

    def __init__(self, high: int, shape: tuple[int, ...] = ()) -> None:
        self.high, self.shape = high, shape

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.integers(0, self.high, size=(size, *self.shape), dtype=np.int64)
