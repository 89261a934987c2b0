"""A random answer: with probability ``p`` the executed action is uniformly random, reported as certain.

The reference code's ``random_prob`` injection ("Injected tokens report probability 1"): the
actor answers at random and reports ``reported_log_prob`` (default 0.0, log of 1). It is a
:class:`~dg_envs.wrappers.BuggyActor` with ``bug="random"`` — the same machinery — under its own
name (``"random_answer"``) and its own place in :data:`~dg_envs.wrappers.CANONICAL_ORDER`:
inside the bug, outside the discovery (the reference's precedence correct > random > bug > sample).

:class:`RandomAnswerSpec` holds the parameters; :class:`RandomAnswer` runs it around one env
and :class:`VectorRandomAnswer` — published as ``dg_envs.wrappers.vector.RandomAnswer`` —
around a Gymnasium ``VectorEnv``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dg_envs.wrappers._base import FrictionSpec
from dg_envs.wrappers.bug import BuggyActor, VectorBuggyActor
from dg_envs.wrappers.protocol import RANDOM_ANSWER

__all__ = ["RandomAnswerSpec", "RandomAnswer", "VectorRandomAnswer"]


@dataclass(frozen=True)
class RandomAnswerSpec(FrictionSpec):
    """A random answer: with probability ``p`` a uniformly random action runs.

    Args:
        p: probability of a random answer, per step or per episode.
        per: ``"step"`` or ``"episode"``.
        reported_log_prob: the log-probability reported (default 0.0: "probability 1"), or
            ``None`` for the true uniform one.

    >>> RandomAnswerSpec(p=0.1).names, RandomAnswerSpec(p=0.1).bug
    (('random_answer',), 'random')
    """

    name = RANDOM_ANSWER
    stream = 0x0D6E_0006

    p: float
    per: str = "step"
    reported_log_prob: float | None = 0.0

    # What makes it a BuggyActor(bug="random"): the buggy actor's machinery reads these.
    bug = "random"
    landmine = None


class RandomAnswer(BuggyActor):
    """With probability ``p`` the executed action is a uniformly random one, reported as certain.

    ``info["executed_action"]`` is the random action, ``info["behavior_log_prob"]`` the
    ``reported_log_prob`` (0.0 by default) and ``"random_answer"`` is in ``info["frictions"]``.
    Arguments: :class:`RandomAnswerSpec`. A vector version exists:
    :class:`dg_envs.wrappers.vector.RandomAnswer`.

    Example:
        >>> import gymnasium as gym
        >>> from dg_envs.wrappers import RandomAnswer
        >>> env = RandomAnswer(gym.make("CartPole-v1"), p=1.0)
        >>> _ = env.reset(seed=0)
        >>> info = env.step(0)[4]
        >>> info["frictions"], info["behavior_log_prob"], env.action_space.contains(info["executed_action"])
        (['random_answer'], 0.0, True)
    """

    spec_class = RandomAnswerSpec


class VectorRandomAnswer(VectorBuggyActor):
    """:class:`~dg_envs.wrappers.RandomAnswer` around a Gymnasium ``VectorEnv``, batched.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> from dg_envs.wrappers import vector
        >>> envs = vector.RandomAnswer(gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync"), p=1.0)
        >>> _ = envs.reset(seed=0)
        >>> info = envs.step(np.zeros(3, dtype=np.int64))[4]
        >>> info["frictions"].tolist(), info["behavior_log_prob"]
        ([('random_answer',), ('random_answer',), ('random_answer',)], array([0., 0., 0.]))
    """

    spec_class = RandomAnswerSpec
