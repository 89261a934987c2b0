"""Run any Gymnasium ``VectorEnv`` under Stable-Baselines3: :class:`GymnasiumVecEnv` and :func:`make_vec_env`.

SB3 steps a :class:`stable_baselines3.common.vec_env.VecEnv`; Gymnasium 1.x batches with
:class:`gymnasium.vector.VectorEnv` (``SyncVectorEnv``, ``AsyncVectorEnv``, natively batched
envs from ``gym.make_vec(..., vectorization_mode="vector_entry_point")``, and
``gymnasium.vector.VectorWrapper`` stacks such as our batched frictions). The two APIs differ
in three places, and :class:`GymnasiumVecEnv` converts each so that SB3 receives exactly what
its own ``DummyVecEnv`` of the same single env would deliver (``tests/test_vec_env.py``
compares whole trajectories):

* **Episode ends.** On a done sub-env SB3 wants the *reset* observation in ``obs``, the
  final one in ``infos[i]["terminal_observation"]``, ``dones = terminated | truncated`` and
  ``infos[i]["TimeLimit.truncated"] = truncated and not terminated``. Gymnasium's
  ``AutoresetMode.SAME_STEP`` already resets in the same step (final observation and info in
  ``info["final_obs"]`` / ``info["final_info"]``): converted directly, no extra call.
  ``NEXT_STEP`` (Gymnasium's default) would reset on the *next* ``step`` call, ignoring that
  call's action; stepping again at once is no remedy, since it would also advance every
  sub-env that did not finish. The adapter therefore resets exactly the done sub-envs at once
  with Gymnasium's partial reset, ``reset(options={"reset_mask": dones})`` (``SyncVectorEnv``,
  ``AsyncVectorEnv`` and the vector ``RecordEpisodeStatistics`` implement it); after that the
  vector env never sees an autoreset step. ``DISABLED`` is exactly the mode in which the
  caller resets with ``reset_mask``, so it is handled the same way. A natively batched
  ``NEXT_STEP`` env that ignores ``reset_mask`` (Gymnasium's ``CartPoleVectorEnv`` does) would
  silently restart every sub-env: the adapter checks, on such unknown envs, that the
  sub-envs it did not reset kept their observation, and raises otherwise.
* **Infos.** Gymnasium returns one dict of arrays with boolean masks (``info[key]`` is valid
  where ``info["_" + key]`` is set; nested dicts carry their own masks); SB3 wants a list of
  per-env dicts. :func:`vector_info_to_dicts` converts generically, one NumPy gather per key,
  so a key such as ``executed_action`` appears in ``infos[i]`` exactly where its mask is set.
  1-D numeric arrays become Python scalars (``tolist``), other entries stay as NumPy rows or
  the stored objects. In ``SAME_STEP`` a done sub-env's info is its final step's info
  (``final_info``) merged over the top-level entries for that sub-env: wrappers above the
  base env (``RecordEpisodeStatistics``, our frictions) write their keys there, and so does
  the base env's reset; the two cannot be told apart, so a done sub-env's info also holds
  its reset info (kept in ``reset_infos[i]`` as well). ``NEXT_STEP`` keeps them apart exactly.
* **Attributes and methods.** A batched env has one object where ``DummyVecEnv`` has one per
  sub-env. ``get_attr``/``set_attr``/``env_method``/``has_attr`` look the name up on the
  vector stack (outermost ``VectorWrapper`` first, down to the base vector env) and answer
  once per requested index; ``env_method`` calls the method **once** on the vector layer
  that has it and repeats its result for each index (likewise ``set_attr`` sets it once):
  :func:`dg_envs.wrappers.push_policy_snapshot` thus hands a batched policy-driven actor one
  snapshot per update, not ``n_envs``. Names not on the stack fall back, for a
  ``SyncVectorEnv``, to its sub-envs, one by one as in ``DummyVecEnv`` (per-env friction
  wrappers inside it are found this way); ``AsyncVectorEnv`` sub-envs are not searched
  (Gymnasium's ``get_attr`` there calls any method it finds).

Why not an existing adapter (searched SB3, sb3-contrib, rl_zoo3, Shimmy, issues and docs): SB3 2.9
ships none (``stable_baselines3.common.vec_env`` has ``DummyVecEnv``/``SubprocVecEnv`` only). Issue
DLR-RM/stable-baselines3#1745 ("Support VecEnv for gymnasium.vector.VectorEnv and Brax") ends with
a maintainer's "I have a working version here, but still need some polishing"
(https://gist.github.com/araffin/a7a576ec1453e74d9bb93120918ef7e7, Jan. 2025): a gist, not a
release; #1568 and #1608 (``gym.make_vec`` output given to SB3 fails) were closed as RTFM /
duplicate; SB3's docs ("SB3 with EnvPool or Isaac Gym") tell users to write their own
``VecEnvWrapper``. sb3-contrib 2.9, rl_zoo3 2.9 and Shimmy 2.0 contain no converter; Isaac Lab's
``Sb3VecEnvWrapper`` serves Isaac Lab envs only. None handles Gymnasium 1.x's autoreset modes or
masked infos, hence this thin module.

Example:
    >>> from stable_baselines3 import PPO
    >>> venv = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    >>> type(venv).__name__, venv.num_envs, venv.autoreset_mode.name
    ('GymnasiumVecEnv', 4, 'SAME_STEP')
    >>> model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, device="cpu").learn(256)
    >>> len(model.ep_info_buffer) > 0  # episode statistics reach rollout/ep_rew_mean
    True
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec, load_env_creator
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from dg_envs.validation import check_choice, check_int

__all__ = ["GymnasiumVecEnv", "make_vec_env", "vector_info_to_dicts"]

VECTORIZATION_MODES = ("sync", "async", "vector_entry_point")
_FINAL_KEYS = frozenset({"final_obs", "_final_obs", "final_info", "_final_info"})
_TIME_LIMIT = "TimeLimit.truncated"


def vector_info_to_dicts(info: dict[str, Any], num_envs: int, skip: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Split a Gymnasium vector ``info`` (arrays + ``"_" + key`` masks) into one dict per sub-env.

    A key goes to sub-env ``i`` where its mask is set (everywhere when it has no mask);
    nested dicts are split the same way. A 1-D numeric array gives Python scalars, other
    arrays their rows, a list or tuple of length ``num_envs`` its items, anything else is
    shared by all sub-envs. Top-level keys in ``skip`` are left out.

    >>> info = {"executed_action": np.array([0, 2, 0]), "_executed_action": np.array([False, True, False]),
    ...         "episode": {"r": np.array([1.0, 0.0, 3.0])}, "_episode": np.array([True, False, True])}
    >>> vector_info_to_dicts(info, 3)
    [{'episode': {'r': 1.0}}, {'executed_action': 2}, {'episode': {'r': 3.0}}]
    """
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    _scatter(info, out, num_envs, None, skip)
    return out


def _scatter(info: dict[str, Any], out: Any, n: int, rows: np.ndarray | None, skip: frozenset[str] = frozenset()) -> None:
    """Write ``info``'s entries into ``out[i]`` (``out``: list or dict of dicts), for rows ``rows`` only (None: all).

    Cost: per key one mask lookup and one gather; then one dict assignment per delivered entry.
    """
    all_rows = np.arange(n) if rows is None else rows
    selections: dict[int, tuple[np.ndarray, list[int]]] = {}  # by mask object: wrappers often share one
    for key, value in info.items():
        if key in skip or (isinstance(key, str) and key.startswith("_") and key[1:] in info):
            continue  # left out, or the mask of another key
        mask = info.get(f"_{key}") if isinstance(key, str) else None
        selection = selections.get(id(mask))
        if selection is None:
            if mask is None:
                idx = all_rows
            else:
                mask = np.asarray(mask, dtype=bool)
                idx = mask.nonzero()[0] if rows is None else rows[mask[rows]]
            selection = selections[id(info.get(f"_{key}"))] = (idx, idx.tolist())
        idx, idx_list = selection
        if not idx_list:
            continue
        if isinstance(value, dict):
            sub: dict[int, dict[str, Any]] = {i: {} for i in idx_list}
            _scatter(value, sub, n, idx)
            items: Sequence[Any] = list(sub.values())
        elif isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
            picked = value[idx]  # a copy: no aliasing of the env's buffers
            items = picked.tolist() if picked.ndim == 1 and picked.dtype != object else list(picked)
        elif isinstance(value, (list, tuple)) and len(value) == n:
            items = [value[i] for i in idx_list]
        else:
            items = [value] * len(idx_list)
        for i, item in zip(idx_list, items):
            out[i][key] = item


def _copy_obs(obs: Any) -> Any:
    """A copy SB3 may keep: vector envs may hand out (and later overwrite) internal buffers."""
    if isinstance(obs, dict):
        return {k: _copy_obs(v) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_copy_obs(v) for v in obs)
    return np.array(obs, copy=True)


def _obs_row(obs: Any, i: int) -> Any:
    """Sub-env ``i``'s observation out of a batch (dict/tuple of arrays, array, or object array)."""
    if isinstance(obs, dict):
        return {k: _obs_row(v, i) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_obs_row(v, i) for v in obs)
    row = obs[i]
    return row.copy() if isinstance(row, (np.ndarray, np.generic)) else row


def _rows_equal(old: Any, new: Any, keep: np.ndarray) -> bool:
    if isinstance(old, dict):
        return all(_rows_equal(old[k], new[k], keep) for k in old)
    if isinstance(old, tuple):
        return all(_rows_equal(a, b, keep) for a, b in zip(old, new))
    old, new = np.asarray(old), np.asarray(new)
    if old.dtype.kind not in "biuf" or old.shape != new.shape:
        return True  # nothing we can compare cheaply: trust the env
    return bool(np.array_equal(old[keep], new[keep], equal_nan=old.dtype.kind == "f"))


class GymnasiumVecEnv(VecEnv):
    """An SB3 ``VecEnv`` that runs a Gymnasium ``VectorEnv`` (see the module docstring for the rules).

    :param vector_env: any ``gymnasium.vector.VectorEnv`` (``SyncVectorEnv``, ``AsyncVectorEnv``, a
        natively batched env, possibly under ``VectorWrapper`` s). Its ``metadata["autoreset_mode"]``
        decides how episode ends are converted (``SAME_STEP`` is the cheapest); without one,
        ``NEXT_STEP`` is assumed, as Gymnasium does.

    ``seed(seed)`` (SB3 calls it, then ``reset()``) passes ``seed`` to the next reset, where sub-env
    ``i`` gets ``seed + i`` as in ``DummyVecEnv``. Observations are returned as copies and rewards as
    ``float32``, as ``DummyVecEnv`` returns them.

    Example:
        >>> venv = GymnasiumVecEnv(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))
        >>> _ = venv.seed(0)
        >>> venv.reset().shape
        (2, 4)
        >>> obs, rewards, dones, infos = venv.step(np.array([0, 1]))
        >>> rewards.dtype, infos[0]
        (dtype('float32'), {'TimeLimit.truncated': False})
    """

    def __init__(self, vector_env: VectorEnv) -> None:
        if not isinstance(vector_env, VectorEnv):
            hint = (
                "for a single env use stable_baselines3's DummyVecEnv or make_vec_env"
                if isinstance(vector_env, gym.Env)
                else "an SB3 VecEnv needs no adapter" if isinstance(vector_env, VecEnv)
                else "build one with gymnasium.make_vec(...) or dg_envs.vec_env.make_vec_env(...)"
            )
            raise TypeError(f"vector_env must be a gymnasium.vector.VectorEnv, got {type(vector_env).__name__}; {hint}")
        mode = vector_env.metadata.get("autoreset_mode")
        if mode is None:
            warnings.warn(
                f"{vector_env} has no metadata['autoreset_mode']; assuming AutoresetMode.NEXT_STEP, Gymnasium's default",
                stacklevel=2,
            )
            mode = AutoresetMode.NEXT_STEP
        try:
            self.autoreset_mode = AutoresetMode(mode)
        except ValueError:
            raise ValueError(
                f"vector_env.metadata['autoreset_mode'] must be a gymnasium.vector.AutoresetMode, got {mode!r}"
            ) from None
        self.vector_env = vector_env
        # Sync/Async implement Gymnasium's partial reset; other (native) envs are checked at runtime.
        self._trusted_partial_reset = isinstance(vector_env.unwrapped, (SyncVectorEnv, AsyncVectorEnv))
        self._actions: np.ndarray | None = None
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)

    # -- stepping ---------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        seeds, options = self._seeds, self._options
        if all(s is None for s in seeds):
            seed: int | list[int | None] | None = None
        elif all(s is not None and s == seeds[0] + i for i, s in enumerate(seeds)):
            seed = seeds[0]  # an int: what every VectorEnv accepts, and Sync/Async expand it to seed + i
        else:
            seed = list(seeds)
        if any(o != options[0] for o in options):
            raise ValueError("a Gymnasium VectorEnv takes one options dict for all sub-envs; set_options got different ones")
        obs, info = self.vector_env.reset(seed=seed, options=dict(options[0]) if options[0] else None)
        self.reset_infos = vector_info_to_dicts(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return _copy_obs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, info = self.vector_env.step(actions)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        infos = [{_TIME_LIMIT: t} for t in (truncated & ~terminated).tolist()]
        _scatter(info, infos, self.num_envs, None, _FINAL_KEYS)
        obs = _copy_obs(obs)
        if dones.any():
            done_idx = np.flatnonzero(dones).tolist()
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                self._finish_same_step(info, infos, done_idx)  # obs already holds the reset observations
            else:
                obs = self._reset_done(obs, dones, infos, done_idx)
            if _TIME_LIMIT in info.get("final_info", ()):
                self._set_time_limit(infos, terminated, truncated)
        if _TIME_LIMIT in info:  # the env wrote its own: ours wins, as in DummyVecEnv
            self._set_time_limit(infos, terminated, truncated)
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    @staticmethod
    def _set_time_limit(infos: list[dict[str, Any]], terminated: np.ndarray, truncated: np.ndarray) -> None:
        for info_i, time_limit in zip(infos, (truncated & ~terminated).tolist()):
            info_i[_TIME_LIMIT] = time_limit

    def _finish_same_step(self, info: dict[str, Any], infos: list[dict[str, Any]], done_idx: list[int]) -> None:
        if "final_obs" not in info:
            raise RuntimeError(
                f"{self.vector_env} declares AutoresetMode.SAME_STEP but a done step's info has no 'final_obs'"
            )
        final_obs = info["final_obs"]
        final_infos: dict[int, dict[str, Any]] = {i: {} for i in done_idx}
        _scatter(info.get("final_info", {}), final_infos, self.num_envs, np.asarray(done_idx))
        for i in done_idx:
            self.reset_infos[i] = {k: v for k, v in infos[i].items() if k != _TIME_LIMIT}
            infos[i].update(final_infos[i])
            infos[i]["terminal_observation"] = _obs_row(final_obs, i)

    def _reset_done(self, obs: Any, dones: np.ndarray, infos: list[dict[str, Any]], done_idx: list[int]) -> Any:
        for i in done_idx:
            infos[i]["terminal_observation"] = _obs_row(obs, i)
        new_obs, reset_info = self.vector_env.reset(options={"reset_mask": dones.copy()})
        new_obs = _copy_obs(new_obs)
        if not self._trusted_partial_reset and not dones.all() and not _rows_equal(obs, new_obs, ~dones):
            raise RuntimeError(
                f"{self.vector_env} ({self.autoreset_mode}) changed the observations of sub-envs outside "
                "reset(options={'reset_mask': ...}): it does not implement Gymnasium's partial reset, so the adapter "
                "cannot restart only the finished sub-envs. Build it with autoreset_mode=AutoresetMode.SAME_STEP, "
                "or step the single env through SyncVectorEnv (vectorization_mode='sync')."
            )
        reset_infos = vector_info_to_dicts(reset_info, self.num_envs)
        for i in done_idx:
            self.reset_infos[i] = reset_infos[i]
        return new_obs

    def close(self) -> None:
        self.vector_env.close()

    # -- rendering --------------------------------------------------------------------------
    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(f"The render mode is {self.render_mode}, but get_images() needs 'rgb_array'.", stacklevel=2)
            return [None] * self.num_envs
        frames = self.vector_env.render()
        if frames is None:
            return [None] * self.num_envs
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            return [frames]  # the vector env drew one picture of all sub-envs
        return list(frames)

    # -- attributes -------------------------------------------------------------------------
    def _layers(self):
        layer = self.vector_env
        while True:
            yield layer
            if not isinstance(layer, VectorWrapper):
                return
            layer = layer.env

    def _holder(self, name: str) -> VectorEnv | None:
        """The outermost layer of the vector stack that has ``name``."""
        return next((layer for layer in self._layers() if hasattr(layer, name)), None)

    def _sub_envs(self) -> list[gym.Env] | None:
        base = self.vector_env.unwrapped
        return list(base.envs) if isinstance(base, SyncVectorEnv) else None

    def _missing(self, name: str) -> AttributeError:
        stack = " -> ".join(type(layer).__name__ for layer in self._layers())
        where = " nor on its sub-envs" if self._sub_envs() is not None else ""
        return AttributeError(f"{name!r} is not an attribute of the vector env stack ({stack}){where}")

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute, once per index: from the vector stack, else from each sub-env of a ``SyncVectorEnv``."""
        idx = list(self._get_indices(indices))
        holder = self._holder(attr_name)
        if holder is not None:
            return [getattr(holder, attr_name)] * len(idx)
        envs = self._sub_envs()
        if envs is None:
            raise self._missing(attr_name)
        try:
            return [envs[i].get_wrapper_attr(attr_name) for i in idx]
        except AttributeError:
            raise self._missing(attr_name) from None

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set it once on the vector layer that has it (whatever ``indices``), else on each indexed
        sub-env of a ``SyncVectorEnv`` that has it, else on the outermost vector layer."""
        idx = list(self._get_indices(indices))
        holder = self._holder(attr_name)
        envs = self._sub_envs()
        if holder is None and envs is not None and idx and envs[idx[0]].has_wrapper_attr(attr_name):
            for i in idx:
                envs[i].set_wrapper_attr(attr_name, value)
            return
        setattr(holder if holder is not None else self.vector_env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call the method ONCE on the vector layer that has it and repeat its result per index.

        A batched env is one object: calling it ``n_envs`` times would, for instance, push
        ``n_envs`` policy snapshots per update. Methods found only on the sub-envs of a
        ``SyncVectorEnv`` are called on each indexed sub-env, as ``DummyVecEnv`` does.
        """
        idx = list(self._get_indices(indices))
        holder = self._holder(method_name)
        if holder is not None:
            result = getattr(holder, method_name)(*method_args, **method_kwargs)
            return [result] * len(idx)
        envs = self._sub_envs()
        if envs is None:
            raise self._missing(method_name)
        try:
            methods = [envs[i].get_wrapper_attr(method_name) for i in idx]
        except AttributeError:
            raise self._missing(method_name) from None
        return [method(*method_args, **method_kwargs) for method in methods]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """A ``VectorWrapper`` class: is it on the vector stack; a ``gym.Wrapper`` class: does each
        sub-env of a ``SyncVectorEnv`` have it (``False`` for other vector envs: they hide their sub-envs)."""
        idx = list(self._get_indices(indices))
        if isinstance(wrapper_class, type) and issubclass(wrapper_class, VectorWrapper):
            return [any(isinstance(layer, wrapper_class) for layer in self._layers())] * len(idx)
        envs = self._sub_envs()
        if envs is None:
            return [False] * len(idx)
        from stable_baselines3.common.env_util import is_wrapped

        return [is_wrapped(envs[i], wrapper_class) for i in idx]


def _accepts_autoreset_mode(entry_point: Any) -> bool:
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    try:
        return "autoreset_mode" in inspect.signature(creator).parameters
    except (TypeError, ValueError):
        return False


def make_vec_env(
    env_id: str | EnvSpec,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vectorization_mode: str | None = None,
    vector_kwargs: dict[str, Any] | None = None,
    frictions: dict[str, Any] | None = None,
    record_episode_statistics: bool = True,
) -> GymnasiumVecEnv:
    """``gym.make_vec`` + episode statistics + frictions + :class:`GymnasiumVecEnv`: SB3's ``make_vec_env`` for vector envs.

    :param env_id: a registered id (``import dg_envs`` registers ours) or an ``EnvSpec``.
    :param n_envs: number of sub-envs.
    :param seed: passed to the first reset (sub-env ``i`` gets ``seed + i``) and seeds the action
        space, as SB3's ``make_vec_env`` does.
    :param env_kwargs: keyword arguments of the env (of the native vector env, in that mode).
    :param vectorization_mode: ``"sync"``, ``"async"`` or ``"vector_entry_point"``. ``None``: the
        id's natively batched env when it has one that can autoreset in ``SAME_STEP`` mode
        (its constructor takes ``autoreset_mode``), else ``"sync"``. (Gymnasium's own native envs,
        e.g. ``CartPole-v1``'s, only autoreset on the next step and ignore ``reset_mask``, which SB3's
        semantics cannot be built from; ask for them explicitly and the adapter will say so.)
    :param vector_kwargs: for ``"sync"``/``"async"``: arguments of ``SyncVectorEnv``/``AsyncVectorEnv``.
        Defaults here: ``autoreset_mode=SAME_STEP`` (no extra reset call per episode end) and
        ``copy=False`` (the adapter copies observations once anyway).
    :param frictions: keyword arguments of :func:`dg_envs.wrappers.apply_frictions`, applied to
        the vector env (their batched versions).
    :param record_episode_statistics: wrap Gymnasium's vector ``RecordEpisodeStatistics`` *inside*
        the frictions, so ``info["episode"]`` (``{"r", "l", "t"}``, SB3's ``Monitor`` format) feeds
        ``ep_info_buffer`` / ``rollout/ep_rew_mean`` with the environment's clean return, as SB3's
        ``make_vec_env`` does with ``Monitor`` inside ``wrapper_class``.

    Example:
        >>> import dg_envs
        >>> venv = make_vec_env("dg_envs/TokenReversal-v0", n_envs=3, seed=0, env_kwargs={"length": 2})
        >>> venv.reset().shape, venv.action_space
        ((3, 5), Discrete(2))
    """
    n_envs = check_int(n_envs, "n_envs", low=1)
    spec = gym.spec(env_id) if isinstance(env_id, str) else env_id
    if not isinstance(spec, EnvSpec):
        raise TypeError(f"env_id must be a registered id or an EnvSpec, got {env_id!r}")
    kwargs = dict(env_kwargs or {})
    vector_kwargs = dict(vector_kwargs or {})
    native_same_step = spec.vector_entry_point is not None and _accepts_autoreset_mode(spec.vector_entry_point)
    if vectorization_mode is None:
        vectorization_mode = "vector_entry_point" if native_same_step else "sync"
    vectorization_mode = check_choice(vectorization_mode, "vectorization_mode", VECTORIZATION_MODES)
    if vectorization_mode == "vector_entry_point":
        if vector_kwargs:
            raise ValueError(
                f"vector_kwargs apply to 'sync'/'async' only; pass a native env's arguments in env_kwargs, got {vector_kwargs}"
            )
        if native_same_step:
            kwargs.setdefault("autoreset_mode", AutoresetMode.SAME_STEP)
        vector_env = gym.make_vec(spec, num_envs=n_envs, vectorization_mode=vectorization_mode, **kwargs)
    else:
        vector_kwargs.setdefault("autoreset_mode", AutoresetMode.SAME_STEP)
        vector_kwargs.setdefault("copy", False)
        vector_env = gym.make_vec(
            spec, num_envs=n_envs, vectorization_mode=vectorization_mode, vector_kwargs=vector_kwargs, **kwargs
        )
    if record_episode_statistics:
        vector_env = RecordEpisodeStatistics(vector_env)
    if frictions:
        from dg_envs.wrappers import apply_frictions

        vector_env = apply_frictions(vector_env, **frictions)
    venv = GymnasiumVecEnv(vector_env)
    if seed is not None:
        venv.seed(seed)
        venv.action_space.seed(seed)
    return venv
