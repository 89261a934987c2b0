"""The native vector envs (dg_envs.envs.vector and the ``*VectorEnv`` classes): the same trajectories
as ``SyncVectorEnv`` of the single env, Gymnasium's vector protocol, groups, bad inputs.

Gymnasium 1.4 has no checker for vector envs (``check_env`` takes single envs only), so the
checks it runs on a single env are done here by hand: seeded determinism, ``reset(seed)``
reproducibility, observations inside the batched space, pickling and ``close()``; its vector
wrapper ``RecordEpisodeStatistics`` is run on top as a protocol check.
"""

import inspect
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode

import dg_envs  # noqa: F401 - registers the ids
from dg_envs.envs import ENV_IDS
from dg_envs.envs.bandits import ContextualBanditVectorEnv, KArmedBanditVectorEnv
from dg_envs.envs.mnist import MNISTBanditVectorEnv
from dg_envs.envs.token_reversal import TokenReversalVectorEnv
from dg_envs.envs.vector import RandomBlocks

MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)


def _record_episode_statistics_knows_same_step() -> bool:
    """Whether Gymnasium's vector ``RecordEpisodeStatistics.step`` handles SAME_STEP autoreset.

    Before Gymnasium PR #1624 (1.2.2, the release Ray RLlib 2.60 pins, has the old code) it
    counted every episode after a sub-env's first with NEXT_STEP semantics, one step short.
    """
    try:
        return "SAME_STEP" in inspect.getsource(gym.wrappers.vector.RecordEpisodeStatistics.step)
    except (OSError, TypeError):  # no source: assume a current release
        return True
CLASSES = {
    "dg_envs/KArmedBandit-v0": KArmedBanditVectorEnv,
    "dg_envs/ContextualBandit-v0": ContextualBanditVectorEnv,
    "dg_envs/MNISTBandit-v0": MNISTBanditVectorEnv,
    "dg_envs/TokenReversal-v0": TokenReversalVectorEnv,
}
# Keep MNIST offline in tests whatever lies in the user's cache directory.
BASE_KWARGS = {"dg_envs/MNISTBandit-v0": {"source": "offline"}}

#: (id, kwargs, steps): the defaults of every id, then the settings with other draws. The step
#: counts take every sub-env past its first block of 256 pre-drawn episodes (or reward draws).
VARIANTS = [
    ("dg_envs/KArmedBandit-v0", {}, 40),  # no randomness at all
    ("dg_envs/KArmedBandit-v0", {"n_arms": 3, "means": [0.2, 0.7, 1.0]}, 1600),  # uneven draws per sub-env
    ("dg_envs/KArmedBandit-v0",
     {"n_arms": 3, "reward_dist": "gaussian", "means": [-1.0, 2.0, 0.5], "noise_std": 0.3}, 600),
    ("dg_envs/KArmedBandit-v0", {"n_arms": 2, "reward_dist": "gaussian", "noise_std": 0.0}, 40),
    ("dg_envs/ContextualBandit-v0", {}, 600),
    ("dg_envs/ContextualBandit-v0", {"n_contexts": 100, "n_arms": 10}, 600),
    # random rewards: the per-sub-env fallback (blocks of one draw)
    ("dg_envs/ContextualBandit-v0", {"n_contexts": 2, "n_arms": 3, "means": [[0.1, 0.9, 0.5], [0.8, 0.2, 0.0]]}, 100),
    ("dg_envs/ContextualBandit-v0",
     {"n_contexts": 2, "n_arms": 2, "reward_dist": "gaussian", "means": [[0, 1], [2, 0]]}, 100),
    ("dg_envs/MNISTBandit-v0", {}, 600),
    ("dg_envs/MNISTBandit-v0", {"split": "test", "flatten": False}, 60),
    ("dg_envs/TokenReversal-v0", {}, 60),
    ("dg_envs/TokenReversal-v0", {"length": 2, "vocab_size": 2}, 900),
    ("dg_envs/TokenReversal-v0",
     {"length": 3, "vocab_size": 3, "task": "flip", "reward": "sequential", "kappa": 0.5}, 120),
    ("dg_envs/TokenReversal-v0", {"length": 4, "vocab_size": 5, "task": "reverse_flip", "kappa": 0.0}, 120),
    ("dg_envs/TokenReversal-v0", {"length": 1, "vocab_size": 2, "task": "copy", "reward": "sequential"}, 60),
]
#: The attribute that holds each id's per-episode draw.
EPISODE_ATTR = {
    "dg_envs/ContextualBandit-v0": "context",
    "dg_envs/MNISTBandit-v0": "index",
    "dg_envs/TokenReversal-v0": "prompt",
}


def make_vector(env_id, num_envs=4, **kwargs):
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        **{**BASE_KWARGS.get(env_id, {}), **kwargs})


def make_sync(env_id, num_envs, autoreset_mode, **kwargs):
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": autoreset_mode}, **{**BASE_KWARGS.get(env_id, {}), **kwargs})


def optimal_or_error(call):
    try:
        return np.asarray(call())
    except RuntimeError:
        return "RuntimeError"


def same(a, b):
    return data_equivalence(a, b, exact=True)


def rollout(envs, seed, n_steps, action_seed=0):
    """Seeded reset, then actions that are optimal half of the time (so rewards and ``perfect`` vary)."""
    rng = np.random.default_rng(action_seed)
    trace = [envs.reset(seed=seed)]
    for _ in range(n_steps):
        actions = rng.integers(0, envs.single_action_space.n, envs.num_envs)
        best = optimal_or_error(envs.unwrapped.optimal_action)
        if not isinstance(best, str):
            actions = np.where(rng.random(envs.num_envs) < 0.5, best, actions)
        trace.append(envs.step(actions))
    return trace


@pytest.mark.parametrize("autoreset_mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize("env_id, kwargs, n_steps", VARIANTS, ids=[f"{v[0][8:-3]}-{i}" for i, v in enumerate(VARIANTS)])
def test_same_trajectories_as_sync_vector_env(env_id, kwargs, n_steps, autoreset_mode):
    """Observations, rewards, terminations, truncations, infos (final_obs/final_info included),
    the oracle and the per-episode attribute match SyncVectorEnv of the single env step for step,
    also after a mid-run reset with a partial seed list (None keeps a sub-env's generator)."""
    n = 5
    vec = make_vector(env_id, n, autoreset_mode=autoreset_mode, **kwargs)
    sync = make_sync(env_id, n, autoreset_mode, **kwargs)
    assert vec.metadata["autoreset_mode"] == sync.metadata["autoreset_mode"] == autoreset_mode
    rng = np.random.default_rng(1)
    attr = EPISODE_ATTR.get(env_id)
    for seed, steps in ((7, n_steps), ([None, 3, None, 11, None], 20), (None, 20)):
        assert same(vec.reset(seed=seed), sync.reset(seed=seed)), seed
        for t in range(steps):
            best = optimal_or_error(vec.optimal_action)
            assert same(best, optimal_or_error(lambda: np.array(sync.call("optimal_action")))), t
            if attr:
                assert np.array_equal(getattr(vec, attr), np.array(sync.get_attr(attr))), t
            actions = rng.integers(0, vec.single_action_space.n, n)
            if not isinstance(best, str):
                actions = np.where(rng.random(n) < 0.5, best, actions)
            out, expected = vec.step(actions), sync.step(actions)
            assert same(out, expected), (t, out, expected)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_vec_returns_the_native_vector_env(env_id):
    envs = make_vector(env_id, num_envs=64)
    assert type(envs) is CLASSES[env_id] and envs.num_envs == 64
    single = gym.make(env_id, **BASE_KWARGS.get(env_id, {}))
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space.shape == (64, *single.observation_space.shape)
    assert envs.action_space.shape == (64,)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    # Gymnasium's default vectorization mode picks the vector entry point too
    assert type(gym.make_vec(env_id, num_envs=2, **BASE_KWARGS.get(env_id, {}))) is CLASSES[env_id]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rebuild_from_spec(env_id):
    envs = make_vector(env_id, 4, group_size=2)
    rebuilt = gym.make_vec(envs.spec)
    assert type(rebuilt) is CLASSES[env_id] and rebuilt.group_size == 2
    assert same(rollout(envs, 1, 20), rollout(rebuilt, 1, 20))


@pytest.mark.parametrize("autoreset_mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_determinism_and_spaces(env_id, autoreset_mode):
    """Two envs with one seed agree; observations lie in the batched space; reset(seed) reproduces
    the start mid-run; a sampled batch of actions is accepted."""
    a, b = make_vector(env_id, 6, autoreset_mode=autoreset_mode), make_vector(env_id, 6, autoreset_mode=autoreset_mode)
    trace = rollout(a, seed=5, n_steps=40)
    assert same(trace, rollout(b, seed=5, n_steps=40))
    assert not same(trace, rollout(b, seed=6, n_steps=40)) or env_id == "dg_envs/KArmedBandit-v0"  # no randomness
    for obs, *_ in trace:
        assert obs in a.observation_space
    first = a.reset(seed=5)
    a.step(a.action_space.sample())
    assert same(a.reset(seed=5), first) and same(first, trace[0])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_round_trip_continues_identically_and_close(env_id):
    envs = make_vector(env_id, 4)
    envs.reset(seed=3)
    envs.step(np.zeros(4, dtype=np.int64))
    clone = pickle.loads(pickle.dumps(envs))
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = rng.integers(0, envs.single_action_space.n, 4)
        assert same(envs.step(actions), clone.step(actions))
    envs.close()
    assert envs.closed


@pytest.mark.parametrize("autoreset_mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_record_episode_statistics_counts_every_episode(env_id, autoreset_mode):
    """Gymnasium's own vector wrapper reads the autoreset mode from the metadata and sees every
    episode end with its full length."""
    if autoreset_mode == AutoresetMode.SAME_STEP and not _record_episode_statistics_knows_same_step():
        pytest.skip(f"Gymnasium {gym.__version__}'s vector RecordEpisodeStatistics ignores SAME_STEP autoreset "
                    "(fixed upstream by Gymnasium PR #1624)")
    envs = gym.wrappers.vector.RecordEpisodeStatistics(make_vector(env_id, 4, autoreset_mode=autoreset_mode))
    length = envs.unwrapped.episode_length
    envs.reset(seed=0)
    ends = 0
    for _ in range(3 * (length + 1)):
        _, _, terminated, _, info = envs.step(np.zeros(4, dtype=np.int64))
        if "episode" in info:
            assert np.all(info["episode"]["l"][info["_episode"]] == length)
            ends += int(info["_episode"].sum())
    assert ends == 4 * (3 * (length + 1) // (length + (autoreset_mode == AutoresetMode.NEXT_STEP)))


@pytest.mark.parametrize("env_id", sorted(EPISODE_ATTR))
def test_group_members_share_the_episode_draw_of_their_first_member(env_id):
    """With group_size=4 the members of a group share prompt/image/context every episode, and
    the group's draw is what its first sub-env draws in the ungrouped env with the same seed."""
    attr, k = EPISODE_ATTR[env_id], 4
    grouped, plain = make_vector(env_id, 8, group_size=k), make_vector(env_id, 8)
    grouped.reset(seed=2)
    plain.reset(seed=2)
    distinct = set()
    for _ in range(60):
        values, reference = getattr(grouped, attr), getattr(plain, attr)
        for g in range(2):
            assert np.array_equal(values[g * k : (g + 1) * k], np.repeat(reference[g * k][None], k, axis=0))
        distinct.add(np.asarray(values[0]).tobytes())
        actions = np.zeros(8, dtype=np.int64)
        grouped.step(actions)
        plain.step(actions)
    assert len(distinct) > 1  # new draws every episode


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_group_size_one_is_the_plain_env(env_id):
    assert same(rollout(make_vector(env_id, 4, group_size=1), 9, 30), rollout(make_vector(env_id, 4), 9, 30))


def test_random_blocks_equal_successive_draws_across_refills():
    """The fact the vector envs rest on: block draws equal successive single draws."""
    blocks = RandomBlocks(lambda rng, size: rng.integers(0, 3, size=(size, 5), dtype=np.int64), 2, (5,), np.int64, 4)
    blocks.attach([np.random.default_rng(0), np.random.default_rng(1)], [0, 1])
    taken = [blocks.take() for _ in range(10)]
    for row, seed in enumerate((0, 1)):
        rng = np.random.default_rng(seed)
        assert all(np.array_equal(t[row], rng.integers(0, 3, size=5, dtype=np.int64)) for t in taken)


def test_token_reversal_oracle_is_perfect_and_optimal_action_raises_after_the_end():
    envs = make_vector("dg_envs/TokenReversal-v0", 3, length=3, vocab_size=4, task="reverse_flip")
    envs.reset(seed=0)
    for _ in range(3):
        _, reward, terminated, _, info = envs.step(envs.optimal_action())
    assert np.all(reward == 1.0) and np.all(terminated) and np.all(info["perfect"])
    with pytest.raises(RuntimeError, match="over"):
        envs.optimal_action()
    _, reward, terminated, _, _ = envs.step(np.zeros(3, dtype=np.int64))  # NEXT_STEP autoreset
    assert np.all(reward == 0.0) and not terminated.any() and envs.optimal_action().shape == (3,)


# --- bad inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("num_envs, group_size", [(6, 4), (4, 0), (4, -2), (4, 1.5)])
def test_bad_group_size_raises(env_id, num_envs, group_size):
    with pytest.raises(ValueError, match="group_size"):
        make_vector(env_id, num_envs, group_size=group_size)


def test_bad_group_size_names_num_envs():
    with pytest.raises(ValueError, match=r"num_envs must be a multiple of group_size, got num_envs=6, group_size=4"):
        make_vector("dg_envs/TokenReversal-v0", 6, group_size=4)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("num_envs", [0, -1, 2.0, True])
def test_bad_num_envs_raises(env_id, num_envs):
    with pytest.raises(ValueError, match="num_envs"):
        CLASSES[env_id](num_envs=num_envs, **BASE_KWARGS.get(env_id, {}))


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("actions", [
    np.array([0.0, 1.0, 0.0, 1.0]),  # floats are not truncated to actions
    np.array([True, False, True, False]),
    np.array(["0", "1", "0", "1"]),
    np.zeros(3, dtype=np.int64),  # wrong number of actions
    np.zeros((4, 1), dtype=np.int64),
    np.array([0, 1, -1, 0]),
    np.array([0, 1, 99, 0]),
    [0, 1, [2], 0],
    1,
])
def test_invalid_actions_raise(env_id, actions):
    envs = make_vector(env_id, 4)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be"):
        envs.step(actions)
    envs.step([0, 1, 0, 1])  # a list of ints is fine, and the bad call changed nothing


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_invalid_state_and_reset_arguments_raise(env_id):
    envs = make_vector(env_id, 4)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="seed"):
        envs.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([True, False, True, True])})
    obs, _ = envs.reset(seed=0, options={"reset_mask": np.ones(4, dtype=bool)})  # every sub-env: a full reset
    assert np.array_equal(obs, envs.reset(seed=0)[0])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_adapter_runs_the_native_env_in_next_step_mode(env_id):
    """The adapter resets finished sub-envs with a mask; here they all finish together."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from dg_envs.vec_env import GymnasiumVecEnv

    kwargs = {"source": "offline"} if "MNIST" in env_id else {}
    venv = GymnasiumVecEnv(gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point", **kwargs))
    dummy = DummyVecEnv([lambda: gym.make(env_id, **kwargs)] * 4)
    venv.seed(0), dummy.seed(0)
    assert np.array_equal(venv.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    for _ in range(25):
        actions = rng.integers(0, venv.action_space.n, 4)
        (obs, rewards, dones, _), (obs2, rewards2, dones2, _) = venv.step(actions), dummy.step(actions)
        assert np.array_equal(obs, obs2) and np.array_equal(rewards, rewards2) and np.array_equal(dones, dones2)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("mode", [AutoresetMode.DISABLED, "invalid", 3])
def test_bad_autoreset_mode_raises(env_id, mode):
    with pytest.raises(ValueError, match="autoreset_mode"):
        make_vector(env_id, 2, autoreset_mode=mode)


def test_autoreset_mode_accepts_its_string_value():
    envs = make_vector("dg_envs/KArmedBandit-v0", 2, autoreset_mode="SameStep")
    assert envs.autoreset_mode == envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_invalid_render_mode_raises(env_id):
    with pytest.raises(ValueError, match="render_mode must be None for the vector env"):
        make_vector(env_id, 2, render_mode="rgb_array")


@pytest.mark.parametrize("env_id, kwargs, name", [
    ("dg_envs/KArmedBandit-v0", {"n_arms": 0}, "n_arms"),
    ("dg_envs/ContextualBandit-v0", {"correct_arms": [0, 11]}, "correct_arms"),
    ("dg_envs/MNISTBandit-v0", {"split": "validation"}, "split"),
    ("dg_envs/TokenReversal-v0", {"task": "invalid"}, "task"),
])
def test_bad_env_arguments_are_checked_by_the_single_env(env_id, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_vector(env_id, 2, **kwargs)
