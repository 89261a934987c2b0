"""A buggy actor: with probability ``p`` it replaces the action (a landmine, a random or a user's action) and lies.

:class:`BugSpec` holds the parameters (checked once); :class:`BuggyActor` runs it around one
env and :class:`VectorBuggyActor` — published as ``dg_envs.wrappers.vector.BuggyActor`` — around
a whole Gymnasium ``VectorEnv``. :func:`bug_on_space` is the part both share once the action
space is known (the landmine action, the reported log-probability, the random actions);
:mod:`~dg_envs.wrappers.random_answer` reuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from dg_envs.validation import check_choice
from dg_envs.wrappers._base import EnvFriction, FrictionSpec, VectorFriction
from dg_envs.wrappers._spaces import ActionCheck, RandomActions, check_reported_log_prob, take_rows, zero_action
from dg_envs.wrappers.protocol import BUG

__all__ = ["BUG_VALUES", "BugSpec", "BuggyActor", "VectorBuggyActor", "bug_on_space"]

BUG_VALUES = ("landmine", "random")


@dataclass(frozen=True)
class BugSpec(FrictionSpec):
    """A buggy actor: with probability ``p`` it executes its own action and reports certainty.

    Args:
        p: probability of the bug, per step or per episode.
        bug: ``"landmine"``, ``"random"`` or a callable ``bug(obs, action, rng) -> action``
            (for a vector env: a batch of observations and actions in, a batch of actions out).
        landmine: the landmine action (must lie in the action space; default: its "zero" action).
        reported_log_prob: the log-probability the actor reports (finite; <= 0 for discrete
            actions), or ``None`` for the true one.
        per: ``"step"`` or ``"episode"``.

    >>> BugSpec(p=0.1, bug="crash")
    Traceback (most recent call last):
    ...
    ValueError: bug must be one of 'landmine', 'random', 'a callable bug(obs, action, rng) -> action'; got 'crash'
    """

    name = BUG
    stream = 0x0D6E_0003

    p: float
    bug: str | Callable[[Any, Any, np.random.Generator], Any] = "landmine"
    landmine: Any = None
    reported_log_prob: float | None = 0.0
    per: str = "step"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not callable(self.bug):
            check_choice(self.bug, "bug", BUG_VALUES + ("a callable bug(obs, action, rng) -> action",))
        if self.reported_log_prob is None and callable(self.bug):
            raise ValueError(
                "reported_log_prob=None (report the true log-probability) needs bug='landmine' or "
                "bug='random'; a callable bug has no known distribution: pass a float"
            )


class BugOnSpace(NamedTuple):
    """A bug's parameters checked against the action space (:func:`bug_on_space`)."""

    landmine: Any  #: the landmine action
    reported_log_prob: float | None  #: None: report the true log-probability
    random: RandomActions | None  #: for ``bug="random"``
    check: ActionCheck | None  #: for a callable bug: checks what it returns


def bug_on_space(bug: Any, landmine: Any, reported_log_prob: Any, space: gym.Space) -> BugOnSpace:
    """The checks of a bug that need the (single) action space, for both executions.

    >>> from gymnasium import spaces
    >>> bug_on_space("landmine", 7, 0.0, spaces.Discrete(5))
    Traceback (most recent call last):
    ...
    ValueError: landmine must be an action of Discrete(5) (an integer in 0..4), got 7
    """
    landmine = zero_action(space) if landmine is None else ActionCheck(space, "landmine", in_bounds=True)(landmine)
    if reported_log_prob is not None:
        try:
            reported_log_prob = check_reported_log_prob(reported_log_prob, space)
        except ValueError as error:
            raise ValueError(f"{error} (or None: the bug's true log-probability)") from None
    return BugOnSpace(
        landmine,
        reported_log_prob,
        RandomActions(space) if bug == "random" else None,
        ActionCheck(space, "bug") if callable(bug) else None,
    )


class BuggyActor(EnvFriction):
    """With probability ``p`` a buggy actor replaces the action, and lies about it.

    ``bug="landmine"`` executes a fixed action (default: the space's "zero" action, ``0`` —
    or ``start`` — for Discrete, zeros for MultiDiscrete, ``0`` clipped into a Box; the paper's
    all-zeros answer with ``per="episode"`` on token reversal). ``bug="random"`` executes a
    uniformly random action (standard normal on unbounded Box dimensions). A callable
    ``bug(obs, action, rng) -> action`` executes whatever it returns (checked at that step).

    The actor reports ``info["behavior_log_prob"] = reported_log_prob``: 0.0 by default
    (certainty, the paper's lying actor, so importance weights are wrong too); ``None``
    reports the true log-probability of the bug's distribution (0 for a landmine, the uniform
    log-probability / log-density for ``"random"``; not available for a callable).
    Arguments: :class:`BugSpec`. A vector version exists: :class:`dg_envs.wrappers.vector.BuggyActor`.

    Example:
        >>> import gymnasium as gym
        >>> from dg_envs.wrappers import BuggyActor
        >>> env = BuggyActor(gym.make("CartPole-v1"), p=1.0)
        >>> _ = env.reset(seed=0)
        >>> info = env.step(1)[4]
        >>> int(info["executed_action"]), info["behavior_log_prob"], info["frictions"]
        (0, 0.0, ['bug'])
    """

    spec_class = BugSpec

    def _bind(self) -> None:
        spec = self.friction_spec
        self.bug = spec.bug
        self._bug = bug_on_space(spec.bug, spec.landmine, spec.reported_log_prob, self._space)
        self.landmine, self.reported_log_prob = self._bug.landmine, self._bug.reported_log_prob
        self._random, self._check = self._bug.random, self._bug.check  # (plain attributes: read every firing step)

    def _replace(self, action: Any) -> tuple[Any, float, None] | None:
        if not self._fires():
            return None
        if self._random is not None:
            executed = self._random.one(self.rng, self._uniform)
            true_log_prob = self._random.log_prob(executed)
        elif self._check is not None:
            executed, true_log_prob = self._check(self.bug(self._obs, action, self.rng)), 0.0
        else:  # a numpy scalar is immutable; an array is copied (infos must not share data)
            landmine = self.landmine
            executed = landmine if isinstance(landmine, np.integer) else landmine.copy()
            true_log_prob = 0.0
        reported = self.reported_log_prob
        return executed, true_log_prob if reported is None else reported, None


class VectorBuggyActor(VectorFriction):
    """:class:`~dg_envs.wrappers.BuggyActor` around a Gymnasium ``VectorEnv``, batched.

    The same friction (:class:`~dg_envs.wrappers.bug.BugSpec`) sub-env by sub-env. A callable
    ``bug`` is called once per step with the observations and actions of the sub-envs where it
    fired (leading batch dimension) and must return one action per row.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> import dg_envs
        >>> from dg_envs.wrappers import vector
        >>> envs = gym.make_vec("dg_envs/TokenReversal-v0", num_envs=4, vectorization_mode="vector_entry_point", length=3)
        >>> envs = vector.BuggyActor(envs, p=0.5, per="episode")
        >>> _ = envs.reset(seed=0)
        >>> info = envs.step(np.ones(4, dtype=np.int64))[4]
        >>> info["_executed_action"], info["executed_action"][info["_executed_action"]]
        (array([False, False, False,  True]), array([0]))
    """

    spec_class = BugSpec

    def _bind(self) -> None:
        BuggyActor._bind(self)  # the same checks against the (single) action space
        n = self.num_envs
        # Rows for every sub-env, handed out as views: most steps need the first k of them.
        self._landmine_rows = np.repeat(np.asarray(self._bug.landmine)[None], n, axis=0)
        self._reported_rows = np.full(n, 0.0 if self._bug.reported_log_prob is None else self._bug.reported_log_prob)

    def _replace(self, actions: Any, fired: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
        bug = self._bug
        log_probs = self._reported_rows[:k]  # the reported one, or the true one of a landmine (0)
        if bug.random is not None:
            executed = bug.random.batch(self.rng, k)
            if bug.reported_log_prob is None:
                log_probs = bug.random.log_probs(executed)
        elif bug.check is not None:
            idx = fired.nonzero()[0]
            raw = self.bug(take_rows(self._obs, idx), np.asarray(actions)[idx], self.rng)
            executed = bug.check.batch(raw, k)
        else:
            executed = self._landmine_rows[:k]
        return fired, executed, log_probs, None
