"""Tests of :mod:`dg_envs.vec_env`: a Gymnasium VectorEnv must look to SB3 exactly like DummyVecEnv."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

import dg_envs  # noqa: F401  (registers the ids)
from dg_envs.algos import DGA2C
from dg_envs.vec_env import GymnasiumVecEnv, make_vec_env, vector_info_to_dicts
from dg_envs.wrappers import push_policy_snapshot

MODES = (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED)


# -- small envs ----------------------------------------------------------------------------
class _DictObservation(gym.ObservationWrapper):
    """CartPole with a Dict observation (position / velocity)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = spaces.Dict({
            "position": spaces.Box(-np.inf, np.inf, (2,), np.float32),
            "velocity": spaces.Box(-np.inf, np.inf, (2,), np.float32),
        })

    def observation(self, obs):
        return {"position": obs[[0, 2]], "velocity": obs[[1, 3]]}


class _PairAction(gym.ActionWrapper):
    """CartPole driven by a MultiDiscrete([2, 3]) action (the first component pushes)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.action_space = spaces.MultiDiscrete([2, 3])

    def action(self, action):
        return int(action[0])


class _Counter(gym.Env):
    """Counts steps: obs ``[t, length]``, reward = action, terminated at ``t == length`` (drawn in
    1..5 at reset), truncated at ``t == 3``; the info says how far it got."""

    observation_space = spaces.Box(0.0, 10.0, (2,), np.float32)
    action_space = spaces.Discrete(2)
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def render(self):
        return np.full((2, 3, 3), 10 * self.t, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(1, 6))
        return np.array([0, self.length], np.float32), {"length": self.length}

    def step(self, action):
        self.t += 1
        obs = np.array([self.t, self.length], np.float32)
        return obs, float(action), self.t == self.length, self.t >= 3, {"t": self.t}


class _BatchedCounter(VectorEnv):
    """:class:`_Counter` natively batched, in any autoreset mode, with Gymnasium's partial reset
    (or, ``partial_reset=False``, a reset that restarts every sub-env whatever the mask)."""

    def __init__(self, num_envs: int, autoreset_mode=AutoresetMode.NEXT_STEP, partial_reset: bool = True, render_mode=None):
        self.num_envs, self.render_mode = num_envs, render_mode
        self.single_observation_space, self.single_action_space = _Counter.observation_space, _Counter.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": autoreset_mode}
        self.partial_reset = partial_reset
        self.t = np.zeros(num_envs, np.int64)
        self.length = np.zeros(num_envs, np.int64)
        self.rngs = [np.random.default_rng() for _ in range(num_envs)]
        self.pending = np.zeros(num_envs, bool)

    def render(self):
        return np.stack([np.full((2, 3, 3), 10 * t, np.uint8) for t in self.t])

    def _obs(self):
        return np.stack([self.t, self.length], axis=1).astype(np.float32)

    def _restart(self, mask):
        for i in np.flatnonzero(mask):
            self.t[i], self.length[i] = 0, self.rngs[i].integers(1, 6)
        self.pending[mask] = False
        return {"length": np.where(mask, self.length, 0), "_length": mask.copy()}

    def reset(self, *, seed=None, options=None):
        mask = (options or {}).get("reset_mask")
        if mask is None or not self.partial_reset:
            mask = np.ones(self.num_envs, bool)
        if seed is not None:
            self.rngs = [gym.utils.seeding.np_random(seed + i)[0] for i in range(self.num_envs)]  # as Env.reset(seed)
        info = self._restart(mask)
        return self._obs(), info

    def step(self, actions):
        mode, ended = self.metadata["autoreset_mode"], self.pending.copy()
        if mode == AutoresetMode.DISABLED:
            assert not ended.any(), "stepped a finished sub-env without reset_mask"
        self.t[~ended] += 1
        rewards = np.where(ended, 0.0, np.asarray(actions, np.float64))
        terminated, truncated = (self.t == self.length) & ~ended, (self.t >= 3) & ~ended
        info = {"t": self.t.copy(), "_t": ~ended}
        if mode == AutoresetMode.NEXT_STEP and ended.any():
            self._restart(ended)
        done = terminated | truncated
        if mode == AutoresetMode.SAME_STEP and done.any():
            final_obs = np.empty(self.num_envs, object)
            final_obs[:] = list(self._obs())
            final_info = {"t": info["t"], "_t": done}
            info = {"t": info["t"], "_t": ~done, "final_obs": final_obs, "_final_obs": done,
                    "final_info": final_info, "_final_info": done}
            reset_info = self._restart(done)
            info["length"], info["_length"] = reset_info["length"], reset_info["_length"]
        else:
            self.pending |= done
        return self._obs(), rewards, terminated, truncated, info


def _cartpole():
    return gym.make("CartPole-v1", max_episode_steps=10)  # TimeLimit truncations as well as terminations


ENVS = {
    "cartpole": _cartpole,
    "token_reversal": lambda: gym.make("dg_envs/TokenReversal-v0", length=3, vocab_size=3),
    "dict_obs": lambda: _DictObservation(_cartpole()),
    "box_action": lambda: gym.make("Pendulum-v1", max_episode_steps=7),
    "multidiscrete_action": lambda: _PairAction(_cartpole()),
    "counter": _Counter,
}


# -- comparison helpers ----------------------------------------------------------------------
def _assert_same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        a_, b_ = np.asarray(a), np.asarray(b)
        assert a_.shape == b_.shape and np.array_equal(a_, b_), f"{where}: {a!r} != {b!r}"


def _trajectory(venv, actions, seed: int = 3, same_step_infos: bool = False):
    """[reset obs, (obs, rewards, dones, infos, reset_infos) per step].

    ``same_step_infos``: build the infos a SAME_STEP vector env can deliver from DummyVecEnv's:
    a done sub-env's step info also holds its reset info (the two arrive mixed at the top level).
    """
    venv.seed(seed)
    out = [venv.reset()]
    for action in actions:
        obs, rewards, dones, infos = venv.step(action)
        reset_infos = [dict(info) for info in venv.reset_infos]
        if same_step_infos:
            infos = [{**reset_infos[i], **info} if dones[i] else info for i, info in enumerate(infos)]
        out.append((obs, rewards, dones, infos, reset_infos))
    venv.close()
    return out


def _actions(space: spaces.Space, n_envs: int, n_steps: int, seed: int = 0) -> list[np.ndarray]:
    space = gym.vector.utils.batch_space(space, n_envs)
    space.seed(seed)
    return [space.sample() for _ in range(n_steps)]


# -- trajectories ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("name", sorted(ENVS))
def test_trajectory_equals_dummy_vec_env(name, mode):
    """Obs, rewards, dones, infos (terminal observations, TimeLimit.truncated) and reset infos equal DummyVecEnv's
    (in SAME_STEP mode a done sub-env's info also carries its reset info: see the module docstring)."""
    n, make = 4, ENVS[name]
    actions = _actions(make().action_space, n, 40)
    expected = _trajectory(DummyVecEnv([make] * n), actions, same_step_infos=mode == AutoresetMode.SAME_STEP)
    got = _trajectory(GymnasiumVecEnv(SyncVectorEnv([make] * n, autoreset_mode=mode)), actions)
    _assert_same(got, expected, name)
    dones = np.array([step[2] for step in expected[1:]])
    assert dones.any(), "the trajectory must cross episode ends"
    if name in ("cartpole", "counter"):  # both kinds of episode end occur
        n_truncated = sum(info["TimeLimit.truncated"] for step in expected[1:] for info in step[3])
        assert 0 < n_truncated < dones.sum()


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_native_batched_env_equals_dummy_vec_env(mode):
    """A natively batched env (not Sync/Async) in each autoreset mode, against DummyVecEnv of its single env."""
    n = 5
    actions = _actions(_Counter.action_space, n, 30)
    expected = _trajectory(DummyVecEnv([_Counter] * n), actions, same_step_infos=mode == AutoresetMode.SAME_STEP)
    got = _trajectory(GymnasiumVecEnv(_BatchedCounter(n, mode)), actions)
    _assert_same(got, expected)


def test_async_vector_env_equals_dummy_vec_env():
    actions = _actions(spaces.Discrete(2), 2, 25)
    expected = _trajectory(DummyVecEnv([_cartpole] * 2), actions)
    got = _trajectory(GymnasiumVecEnv(AsyncVectorEnv([_cartpole] * 2, autoreset_mode=AutoresetMode.SAME_STEP)), actions)
    _assert_same(got, expected)


def test_env_without_partial_reset_is_refused():
    """A NEXT_STEP env that ignores reset_mask would restart every sub-env: refused, not silently run."""
    venv = GymnasiumVecEnv(_BatchedCounter(4, AutoresetMode.NEXT_STEP, partial_reset=False))
    venv.seed(0)
    venv.reset()
    with pytest.raises(RuntimeError, match="partial reset"):
        for _ in range(20):
            venv.step(np.zeros(4, np.int64))


def test_render_tiles_the_sub_env_frames_as_dummy_vec_env():
    venvs = [DummyVecEnv([lambda: _Counter("rgb_array")] * 3), GymnasiumVecEnv(_BatchedCounter(3, render_mode="rgb_array"))]
    frames = []
    for venv in venvs:
        venv.seed(0)
        venv.reset()
        venv.step(np.ones(3, np.int64))
        frames.append(venv.render())
    assert frames[0].shape == (4, 6, 3) and np.array_equal(frames[0], frames[1])


def test_set_options_reach_the_reset():
    venvs = [DummyVecEnv([_cartpole] * 2), GymnasiumVecEnv(SyncVectorEnv([_cartpole] * 2))]
    for venv in venvs:
        venv.seed(1)
        venv.set_options({"low": 0.2, "high": 0.3})
    first, second = (venv.reset() for venv in venvs)
    assert np.array_equal(first, second) and first.min() >= 0.2


def test_reset_passes_seed_once_and_returns_obs_only():
    venv = GymnasiumVecEnv(SyncVectorEnv([_Counter] * 3))
    assert venv.seed(7) == [7, 8, 9]
    first = venv.reset()
    assert isinstance(first, np.ndarray) and first.shape == (3, 2)
    assert venv.reset_infos == [{"length": int(x)} for x in first[:, 1]]
    venv.seed(7)
    assert np.array_equal(venv.reset(), first)
    assert [venv.reset() for _ in range(5)]  # unseeded resets: seeds are used once
    assert venv._seeds == [None] * 3


# -- infos -------------------------------------------------------------------------------------
class _ReplaceEven(VectorWrapper):
    """Replaces the action of the even sub-envs by 0 and says so in Gymnasium's masked-info format."""

    def step(self, actions):
        mask = np.arange(self.num_envs) % 2 == 0
        executed = np.where(mask, 0, actions)
        obs, rewards, terminated, truncated, info = self.env.step(executed)
        frictions = np.empty(self.num_envs, object)
        for i in np.flatnonzero(mask):
            frictions[i] = ["bug"]
        lag = np.arange(self.num_envs)
        info.update({
            "executed_action": executed, "_executed_action": mask,
            "behavior_log_prob": np.where(mask, 0.0, np.nan), "_behavior_log_prob": mask,
            "frictions": frictions, "_frictions": mask,
            "actor": {"lag": lag, "_lag": lag == 2}, "_actor": lag >= 2,
        })
        return obs, rewards, terminated, truncated, info


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_masked_infos_arrive_per_env(mode):
    venv = GymnasiumVecEnv(_ReplaceEven(SyncVectorEnv([_cartpole] * 5, autoreset_mode=mode)))
    venv.reset()
    for _ in range(15):  # across episode ends: the wrapper's keys reach done sub-envs too
        _, _, dones, infos = venv.step(np.ones(5, np.int64))
        for i, info in enumerate(infos):
            if i % 2 == 0:
                assert info["executed_action"] == 0 and isinstance(info["executed_action"], int)
                assert info["behavior_log_prob"] == 0.0 and info["frictions"] == ["bug"]
            else:
                assert not {"executed_action", "behavior_log_prob", "frictions"} & set(info)
            assert info.get("actor") == ({"lag": 2} if i == 2 else {} if i > 2 else None)
            assert ("terminal_observation" in info) == dones[i]


def test_vector_info_to_dicts_unmasked_lists_and_scalars():
    info = {"a": np.array([[1, 2], [3, 4]]), "b": ["x", "y"], "c": 5, "_d": np.array([1, 2])}
    got = vector_info_to_dicts(info, 2)
    assert got[1]["b"] == "y" and got[0]["c"] == 5 and got[1]["_d"] == 2
    assert np.array_equal(got[1]["a"], [3, 4])
    info["a"][1, 0] = 99
    assert got[1]["a"][0] == 3, "rows are copies, not views of the env's buffers"


# -- attributes: the policy-snapshot path -----------------------------------------------------------
class _CountingActor(VectorWrapper):
    """A batched policy-driven actor in miniature: counts the snapshots it receives."""

    def __init__(self, env):
        super().__init__(env)
        self.pushes = 0
        self.policy_lag = 1

    def push_policy_snapshot(self, actor) -> bool:
        self.pushes += 1
        return True


def test_push_policy_snapshot_calls_the_vector_wrapper_once():
    actor = _CountingActor(RecordEpisodeStatistics(SyncVectorEnv([_cartpole] * 4)))
    venv = VecMonitor(GymnasiumVecEnv(actor))
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=32, device="cpu")
    assert push_policy_snapshot(venv, model.policy) == 4  # "accepted by all 4 envs" ...
    assert actor.pushes == 1  # ... from one call on the batched actor
    assert venv.get_attr("policy_lag", indices=[0, 2]) == [1, 1]
    venv.set_attr("policy_lag", 3, indices=[1])  # once, on the wrapper that has it
    assert actor.policy_lag == 3
    assert venv.env_method("push_policy_snapshot", None, indices=[0, 3]) == [True, True] and actor.pushes == 2
    assert venv.env_is_wrapped(_CountingActor) == [True] * 4
    assert venv.env_is_wrapped(gym.wrappers.TimeLimit) == [True] * 4  # a SyncVectorEnv's sub-envs are visible
    assert not venv.has_attr("no_such_thing")
    with pytest.raises(AttributeError, match="no_such_thing"):
        venv.env_method("no_such_thing")


def test_dga2c_pushes_once_per_update_through_the_adapter():
    actor = _CountingActor(SyncVectorEnv([_cartpole] * 4, autoreset_mode=AutoresetMode.SAME_STEP))
    model = DGA2C("MlpPolicy", GymnasiumVecEnv(actor), n_steps=8, device="cpu", seed=0).learn(64)
    assert model.snapshot_envs == 4
    assert actor.pushes == 1 + 64 // (8 * 4)  # learn start + one per update, not times n_envs


def test_sub_env_attributes_of_a_sync_vector_env():
    """Per-env names (here a per-env wrapper's method) fall back to DummyVecEnv's per-env behaviour."""

    class Tagged(gym.Wrapper):
        tag = "t"

        def ping(self, x):
            return x + 1

    venv = GymnasiumVecEnv(SyncVectorEnv([lambda: Tagged(_cartpole())] * 3))
    assert venv.get_attr("tag") == ["t"] * 3
    assert venv.env_method("ping", 1, indices=[0, 2]) == [2, 2]
    venv.set_attr("tag", "u", indices=[1])
    assert venv.get_attr("tag") == ["t", "u", "t"]
    assert venv.env_is_wrapped(Tagged) == [True] * 3


# -- SB3 algorithms through the adapter ---------------------------------------------------------
def _params(model) -> dict[str, th.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


@pytest.mark.parametrize("algo", [PPO, DGA2C], ids=lambda a: a.__name__)
def test_learning_through_adapter_equals_dummy_vec_env(algo):
    """Oracle: the same algorithm, seed and env give bit-identical weights through either VecEnv."""
    kwargs = dict(n_steps=16, device="cpu", seed=0) | ({"batch_size": 32, "n_epochs": 2} if algo is PPO else {})
    ref = algo("MlpPolicy", DummyVecEnv([_cartpole] * 4), **kwargs).learn(256)
    ours = algo("MlpPolicy", GymnasiumVecEnv(SyncVectorEnv([_cartpole] * 4, autoreset_mode=AutoresetMode.SAME_STEP)),
                **kwargs).learn(256)
    expected, got = _params(ref), _params(ours)
    assert all(th.equal(expected[k], got[k]) for k in expected)


def test_episode_statistics_reach_sb3():
    """CartPole pays 1 per step, so every logged episode return equals its length."""
    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=4, seed=0), n_steps=32, batch_size=64,
                n_epochs=1, device="cpu").learn(256)
    assert len(model.ep_info_buffer) >= 4
    assert all(ep["r"] == ep["l"] > 0 for ep in model.ep_info_buffer)


def test_relabelling_sees_executed_actions():
    """DGA2C (ExecutedActionMixin) stores the wrapper's executed action and reported log-prob."""
    venv = GymnasiumVecEnv(_ReplaceEven(SyncVectorEnv([_cartpole] * 4, autoreset_mode=AutoresetMode.SAME_STEP)))
    model = DGA2C("MlpPolicy", venv, n_steps=8, device="cpu", seed=0)
    model.learn(32)
    buffer = model.rollout_buffer
    assert model.relabelled_fraction == 0.5
    assert buffer.generator_ready  # train() flattened the buffer env by env: back to (env, step)
    actions, behavior = buffer.actions.reshape(4, 8), buffer.behavior_log_probs.reshape(4, 8)
    assert np.all(actions[[0, 2]] == 0) and not np.all(actions[[1, 3]] == 0)
    assert np.all(behavior[[0, 2]] == 0.0) and np.all(behavior[[1, 3]] < 0)  # reported vs the policy's own


def test_save_and_load_a_model_trained_through_the_adapter(tmp_path):
    venv = make_vec_env("dg_envs/TokenReversal-v0", n_envs=4, seed=0, env_kwargs={"length": 3})
    model = DGA2C("MlpPolicy", venv, n_steps=6, device="cpu", seed=0).learn(48)
    model.save(tmp_path / "model.zip")
    loaded = DGA2C.load(tmp_path / "model.zip", env=venv, device="cpu")
    obs = venv.reset()
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    loaded.learn(24)  # and it trains on


# -- make_vec_env ------------------------------------------------------------------------------
def test_make_vec_env_modes():
    venv = make_vec_env("CartPole-v1", n_envs=2)
    assert isinstance(venv.vector_env.unwrapped, SyncVectorEnv)  # CartPole's native env cannot autoreset SAME_STEP
    assert venv.autoreset_mode == AutoresetMode.SAME_STEP
    native = make_vec_env("CartPole-v1", n_envs=2, vectorization_mode="vector_entry_point", record_episode_statistics=False)
    assert native.autoreset_mode == AutoresetMode.NEXT_STEP  # taken as it is, and checked when it matters


def test_make_vec_env_with_frictions():
    try:
        venv = make_vec_env("dg_envs/TokenReversal-v0", n_envs=4, seed=0, env_kwargs={"length": 2}, frictions={"bug": 1.0})
    except TypeError as error:
        pytest.skip(f"apply_frictions does not accept a Gymnasium VectorEnv yet: {error}")
    model = DGA2C("MlpPolicy", venv, n_steps=4, device="cpu", seed=0).learn(16)
    assert model.relabelled_fraction > 0


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", [gym.make("CartPole-v1"), DummyVecEnv([_cartpole]), "CartPole-v1"], ids=["gym_env", "sb3_vec_env", "str"]
)
def test_not_a_vector_env_is_a_type_error(bad):
    with pytest.raises(TypeError, match="vector_env must be a gymnasium.vector.VectorEnv"):
        GymnasiumVecEnv(bad)


def test_bad_arguments():
    counter = _BatchedCounter(2)
    counter.metadata = {"autoreset_mode": "sometimes"}
    with pytest.raises(ValueError, match="autoreset_mode"):
        GymnasiumVecEnv(counter)
    with pytest.raises(ValueError, match="n_envs"):
        make_vec_env("CartPole-v1", n_envs=0)
    with pytest.raises(ValueError, match="vectorization_mode"):
        make_vec_env("CartPole-v1", vectorization_mode="threads")
