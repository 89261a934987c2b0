"""Token reversal: write the (reversed, flipped) copy of a random prompt, one token per step.

:class:`TokenReversalVectorEnv` is the NumPy-batched vector version of :class:`TokenReversalEnv`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from dg_envs.envs.actions import discrete_action
from dg_envs.envs.rendering import tokens_to_rgb
from dg_envs.envs.vector import FixedLengthVectorEnv, IntegerDraws, batched_info
from dg_envs.validation import check_choice, check_int, check_real

#: ``shift`` is the reference code's second transform, ``(x + 1) mod M`` (the papers' "flip");
#: ``complement`` is ``M - 1 - x``, which this package called ``flip`` first (``flip`` and
#: ``reverse_flip`` stay as its names). The two agree for M = 2.
TASKS = ("copy", "reverse_copy", "shift", "reverse_shift", "complement", "reverse_complement", "flip", "reverse_flip")
REWARDS = ("bag", "sequential")


def task_target(prompt: np.ndarray, task: str, vocab_size: int) -> np.ndarray:
    """The correct answer to ``prompt`` (shape ``(..., H)``) for ``task``: a new array.

    >>> p = np.array([0, 1, 2])
    >>> task_target(p, "reverse_shift", 3), task_target(p, "complement", 3)
    (array([0, 2, 1]), array([2, 1, 0]))
    """
    base = task.removeprefix("reverse_")
    if base == "shift":
        target = (prompt + 1) % vocab_size
    elif base in ("complement", "flip"):
        target = vocab_size - 1 - prompt
    else:
        target = prompt.copy()
    return target[..., ::-1].copy() if task.startswith("reverse_") else target


class TokenReversalEnv(gym.Env):
    """Reproduce a transformed random prompt of ``length`` tokens over ``vocab_size`` symbols.

    ## Description
    The sequence task of the DG papers (arXiv 2603.14608, 2603.20521, 2603.20526). At
    reset a prompt ``x`` of H = ``length`` tokens is drawn uniformly from
    ``{0..M-1}^H`` (M = ``vocab_size``) with the env's RNG. The agent writes its answer
    one token per step; the correct answer (``target``) is

    * ``copy``: ``x``;  ``shift``: ``(x + 1) mod M`` (token-wise; the reference code's and
      the papers' "flip");  ``complement``: ``M-1-x`` (also named ``flip``, this package's
      first name for it; the two transforms agree for M = 2);
    * ``reverse_copy``, ``reverse_shift``, ``reverse_complement`` (= ``reverse_flip``): the
      same, reversed.

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
    task (str): one of ``"copy", "reverse_copy", "shift", "reverse_shift", "complement",
        "reverse_complement", "flip", "reverse_flip"`` (default ``"reverse_copy"``).
    reward (str): ``"bag"`` (default) or ``"sequential"``.
    kappa (float): weight of the partial credit, <= 1 (default 1.0). A negative kappa
        penalises partial credit (the reference code's "trap" reward): only a perfect
        answer pays.
    render_mode (str | None): None, ``"ansi"`` (a one-line text view) or ``"rgb_array"``
        (two rows of coloured cells: the prompt, the answer so far; blanks black).

    ## Version History
    v0: initial version; a NumPy-batched vector version, :class:`TokenReversalVectorEnv`, is the id's
    ``vector_entry_point``. Later in v0 (no trajectory changes): the tasks ``shift`` /
    ``reverse_shift`` (the reference code's ``(x + 1) mod M``), ``complement`` as the honest
    name of ``flip``, and ``kappa < 0``.

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
        kappa = check_real(kappa, "kappa", high=1.0)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.length, self.vocab_size = H, M
        self.task = task
        self.reward = reward
        self.kappa = kappa
        self.render_mode = render_mode
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
        target = task_target(prompt, self.task, M)
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


class TokenReversalVectorEnv(FixedLengthVectorEnv):
    """``num_envs`` copies of :class:`TokenReversalEnv` stepped as NumPy arrays.

    ## Description
    The native vector version of ``dg_envs/TokenReversal-v0`` (its ``vector_entry_point``): the
    same per-sub-env trajectories as ``SyncVectorEnv`` of the single env for the same seeds
    and actions, in both autoreset modes. Each sub-env's prompts are its generator's
    ``integers(0, M, size=H)`` draws, pre-drawn in blocks of episodes (see
    :mod:`dg_envs.envs.vector`). With ``group_size=K`` the K sub-envs of a group answer the
    same prompt each episode (the papers' "prompts x samples"), drawn from the group's first
    sub-env's generator. All episodes last ``length`` steps, so all sub-envs move together.

    ## Action Space
    ``MultiDiscrete([M] * num_envs)``: the next token of every sub-env, an integer array of shape
    ``(num_envs,)`` with values in [0, M); anything else raises ``ValueError`` naming ``actions``.

    ## Observation Space
    ``MultiDiscrete`` of shape ``(num_envs, 2H + 1)`` (int64): per sub-env the prompt, the answer
    so far (M marks a blank) and the position, as :class:`TokenReversalEnv`.

    ## Reward
    Per sub-env as :class:`TokenReversalEnv`: 0 before the H-th token, then
    ``kappa * c + (1 - kappa) * 1{perfect}``; float64, shape ``(num_envs,)``.

    ## Episode End
    Every sub-env terminates after its H-th token. ``NEXT_STEP`` (default): the following step
    ignores its actions, draws new prompts and returns reward 0, not terminated. ``SAME_STEP``:
    the H-th step returns the new prompts' observations and ``info["final_obs"]``,
    ``info["final_info"]``. The final ``info`` holds ``token_accuracy``, ``prefix_accuracy``
    and ``perfect``, each with its ``"_"`` mask.

    ## Arguments
    ``num_envs`` (int >= 1), ``autoreset_mode`` (``AutoresetMode.NEXT_STEP`` | ``SAME_STEP``),
    ``group_size`` (int >= 1 dividing ``num_envs``), and those of :class:`TokenReversalEnv`
    (``length``, ``vocab_size``, ``task``, ``reward``, ``kappa``), validated by it;
    ``render_mode`` must be None. ``prompt`` and ``target`` are ``(num_envs, H)`` arrays;
    ``optimal_action()`` is every sub-env's next correct token (``RuntimeError`` once the
    episodes are over, as the single env).

    ## Version History
    - v0: initial version.

    Example:
        >>> import gymnasium as gym
        >>> import dg_envs
        >>> envs = gym.make_vec("dg_envs/TokenReversal-v0", num_envs=4, vectorization_mode="vector_entry_point",
        ...                     length=3, vocab_size=2)
        >>> obs, info = envs.reset(seed=0)
        >>> obs.shape, bool((envs.target == envs.prompt[:, ::-1]).all())
        ((4, 7), True)
        >>> for _ in range(3):
        ...     obs, reward, terminated, truncated, info = envs.step(envs.optimal_action())
        >>> reward, terminated, info["perfect"]
        (array([1., 1., 1., 1.]), array([ True,  True,  True,  True]), array([ True,  True,  True,  True]))
    """

    def __init__(
        self,
        num_envs: int = 1,
        length: int = 10,
        vocab_size: int = 2,
        task: str = "reverse_copy",
        reward: str = "bag",
        kappa: float = 1.0,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        group_size: int = 1,
    ) -> None:
        self._check_render_mode(render_mode)
        template = TokenReversalEnv(length, vocab_size, task, reward, kappa)
        super().__init__(template, template.length, num_envs, group_size, autoreset_mode)
        self.length, self.vocab_size = template.length, template.vocab_size
        self.task, self.reward, self.kappa = template.task, template.reward, template.kappa
        self._prompt_draws = self._random_blocks(
            IntegerDraws(self.vocab_size, (self.length,)), per_group=True, event_shape=(self.length,), dtype=np.int64
        )
        H, N = self.length, self.num_envs
        self.prompt = np.zeros((N, H), dtype=np.int64)
        self.target = np.zeros((N, H), dtype=np.int64)
        self._obs = np.zeros((N, 2 * H + 1), dtype=np.int64)
        self._n_correct = np.zeros(N, dtype=np.int64)
        self._prefix = np.zeros(N, dtype=np.int64)

    def optimal_action(self) -> np.ndarray:
        """Every sub-env's next correct token."""
        if self._t is None or self._t >= self.length:
            raise RuntimeError("the episodes are over: call reset() or step() before asking for optimal_action()")
        return self.target[:, self._t].copy()

    def _start_episodes(self):
        H, M, template = self.length, self.vocab_size, self.template
        prompt = self._per_group(self._prompt_draws.take())
        target = task_target(prompt, template.task, M)
        self.prompt, self.target = prompt, target
        self._obs[:, :H] = prompt
        self._obs[:, H:] = M  # blank answers...
        self._obs[:, 2 * H] = 0  # ...at position 0
        self._n_correct[:] = 0
        self._prefix[:] = 0
        return self._obs.copy(), {}

    def _advance(self, actions, t):
        H = self.length
        correct = actions == self.target[:, t]
        self._n_correct += correct
        self._prefix += correct & (self._prefix == t)  # no error so far
        self._obs[:, H + t] = actions
        self._obs[:, 2 * H] = t + 1
        if t + 1 < H:
            return self._obs.copy(), np.zeros(self.num_envs), {}
        token_accuracy = self._n_correct / H
        prefix_accuracy = self._prefix / H
        perfect = self._n_correct == H
        c = token_accuracy if self.reward == "bag" else prefix_accuracy
        reward = self.kappa * c + (1.0 - self.kappa) * perfect.astype(np.float64)
        info = batched_info(
            self.num_envs, token_accuracy=token_accuracy, prefix_accuracy=prefix_accuracy, perfect=perfect
        )
        return self._obs.copy(), reward, info
