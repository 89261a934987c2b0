"""Token reversal: write the (reversed, flipped) copy of a random prompt, one token per step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dg_envs.envs.actions import discrete_action
from dg_envs.envs.rendering import tokens_to_rgb
from dg_envs.validation import check_choice, check_int, check_probability

TASKS = ("copy", "flip", "reverse_copy", "reverse_flip")
REWARDS = ("bag", "sequential")


class TokenReversalEnv(gym.Env):
    """Reproduce a transformed random prompt of ``length`` tokens over ``vocab_size`` symbols.

    ## Description
    The sequence task of the DG papers (arXiv 2603.14608, 2603.20521, 2603.20526). At
    reset a prompt ``x`` of H = ``length`` tokens is drawn uniformly from
    ``{0..M-1}^H`` (M = ``vocab_size``) with the env's RNG. The agent writes its answer
    one token per step; the correct answer (``target``) is

    * ``copy``: ``x``;  ``flip``: ``M-1-x`` (token-wise);
    * ``reverse_copy``: ``x[::-1]``;  ``reverse_flip``: ``(M-1-x)[::-1]``.

    Difficulty grows with M**H. The current ``prompt`` and ``target`` are attributes.

    ## Action Space
    ``Discrete(M)``: the next answer token, an integer in [0, M) (Python or NumPy integer, or an
    integer array of shape ``()`` or ``(1,)``); anything else (``1.7``, ``"1"``) raises
    ``ValueError``.

    ## Observation Space
    ``MultiDiscrete([M]*H + [M+1]*H + [H+1])`` (int64), the concatenation of the prompt,
    the answer written so far (the value M marks a blank), and the position (number of
    tokens written). SB3 one-hot encodes MultiDiscrete observations for its MLPs, so the
    policy sees every token and the position.

    ## Reward
    0 on every step but the last. At the end ``R = kappa * c + (1 - kappa) * 1{perfect}``,
    where c is the fraction of tokens correct (``reward="bag"``) or the fraction correct
    up to the first error (``reward="sequential"``). Uniformly random tokens score
    ``E[c] = 1/M`` (bag) and ``E[c] = (1/H) * sum_{k=1..H} M**-k`` (sequential: the prefix
    length L satisfies ``P(L >= k) = M**-k``); ``P(perfect) = M**-H``.

    ## Episode End
    ``terminated=True`` after the H-th token; never truncated; stepping again before ``reset``
    raises ``RuntimeError``. The final ``info`` holds
    ``token_accuracy`` (fraction of tokens correct), ``prefix_accuracy`` (fraction correct
    up to the first error) and ``perfect`` (bool).

    ## Arguments
    length (int): prompt length H >= 1 (default 10).
    vocab_size (int): vocabulary size M >= 2 (default 2).
    task (str): one of ``"copy", "flip", "reverse_copy", "reverse_flip"`` (default
        ``"reverse_copy"``).
    reward (str): ``"bag"`` (default) or ``"sequential"``.
    kappa (float): weight of the partial credit in [0, 1] (default 1.0).
    render_mode (str | None): None, ``"ansi"`` (a one-line text view) or ``"rgb_array"``
        (two rows of coloured cells: the prompt, the answer so far; blanks black).

    ## Version History
    v0: initial version.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> env = gym.make("dg_envs/TokenReversal-v0", length=4, vocab_size=3)
        >>> obs, info = env.reset(seed=0)
        >>> bool((env.unwrapped.target == env.unwrapped.prompt[::-1]).all())
        True
        >>> total = 0.0
        >>> for _ in range(4):
        ...     obs, reward, terminated, truncated, info = env.step(env.unwrapped.optimal_action())
        ...     total += reward
        >>> total, terminated, info["token_accuracy"], info["perfect"]
        (1.0, True, 1.0, True)
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        length: int = 10,
        vocab_size: int = 2,
        task: str = "reverse_copy",
        reward: str = "bag",
        kappa: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        H = check_int(length, "length", low=1)
        M = check_int(vocab_size, "vocab_size", low=2)
        check_choice(task, "task", TASKS)
        check_choice(reward, "reward", REWARDS)
        kappa = check_probability(kappa, "kappa")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.length, self.vocab_size = H, M
        self.task = task
        self.reward = reward
        self.kappa = kappa
        self.render_mode = render_mode
        self._flip = task in ("flip", "reverse_flip")
        self._reverse = task in ("reverse_copy", "reverse_flip")
        self.action_space = spaces.Discrete(M)
        self.observation_space = spaces.MultiDiscrete(np.array([M] * H + [M + 1] * H + [H + 1], dtype=np.int64))
        # One observation buffer updated in place; step/reset hand out copies.
        self._obs = np.zeros(2 * H + 1, dtype=np.int64)
        self.prompt = np.zeros(H, dtype=np.int64)
        self.target = np.zeros(H, dtype=np.int64)
        self._target_list = [0] * H
        self._pos = H  # "episode over" until the first reset
        self._n_correct = 0
        self._prefix = 0

    def optimal_action(self) -> int:
        """The next correct token (what an oracle writes now)."""
        if self._pos >= self.length:
            raise RuntimeError("the episode is over: call reset() before asking for optimal_action()")
        return self._target_list[self._pos]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        H, M = self.length, self.vocab_size
        prompt = self.np_random.integers(0, M, size=H, dtype=np.int64)
        target = M - 1 - prompt if self._flip else prompt.copy()
        if self._reverse:
            target = target[::-1].copy()
        self.prompt, self.target = prompt, target
        self._target_list = target.tolist()
        self._obs[:H] = prompt
        self._obs[H:] = M  # blank answer...
        self._obs[2 * H] = 0  # ...at position 0
        self._pos = 0
        self._n_correct = 0
        self._prefix = 0
        return self._obs.copy(), {}

    def step(self, action):
        pos = self._pos
        H = self.length
        if pos >= H:
            raise RuntimeError("the episode is over: call reset() before step()")
        a = discrete_action(action, self.vocab_size)
        if a == self._target_list[pos]:
            self._n_correct += 1
            if self._prefix == pos:  # no error so far
                self._prefix += 1
        obs = self._obs
        obs[H + pos] = a
        pos += 1
        obs[2 * H] = pos
        self._pos = pos
        if pos < H:
            return obs.copy(), 0.0, False, False, {}
        token_accuracy = self._n_correct / H
        prefix_accuracy = self._prefix / H
        perfect = self._n_correct == H
        c = token_accuracy if self.reward == "bag" else prefix_accuracy
        reward = self.kappa * c + (1.0 - self.kappa) * float(perfect)
        info = {"token_accuracy": token_accuracy, "prefix_accuracy": prefix_accuracy, "perfect": perfect}
        return obs.copy(), reward, True, False, info

    def render(self) -> str | np.ndarray | None:
        H, M = self.length, self.vocab_size
        if self.render_mode == "rgb_array":
            return tokens_to_rgb(np.stack([self.prompt, self._obs[H : 2 * H]]), blank=M)
        if self.render_mode != "ansi":
            return None
        answer = " ".join("_" if t == M else str(t) for t in self._obs[H : 2 * H].tolist())
        prompt = " ".join(str(t) for t in self.prompt.tolist())
        return f"prompt: {prompt} | answer: {answer} | task: {self.task}"
