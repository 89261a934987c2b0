"""The per-step action check shared by the ``Discrete`` environments: one rule, one message.

An action is accepted when it is an integer in ``[0, n)``: a Python ``int``, a NumPy integer
scalar (what ``Discrete.sample()`` and SB3's ``DummyVecEnv`` pass), or an integer NumPy array
of shape ``()`` or ``(1,)`` (what ``model.predict`` returns for one observation). Anything else
(``1.7``, ``"1"``, ``True``, ``np.array(1.0)``) raises a ``ValueError`` naming ``action``,
instead of being truncated to an arm.

The vector environments check a whole batch with :func:`discrete_actions`: the same rule, one
vectorised test, a ``ValueError`` naming ``actions``.

>>> discrete_action(np.array([3]), 10)
3
>>> discrete_action(1.7, 10)
Traceback (most recent call last):
...
ValueError: action must be an integer in [0, 10), got 1.7
>>> discrete_actions([3, 0], 10, num_envs=2)
array([3, 0])
>>> discrete_actions(np.array([3, 10]), 10, num_envs=2)
Traceback (most recent call last):
...
ValueError: actions must be integers in [0, 10), got 10 at index 1
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["discrete_action", "discrete_actions"]


def discrete_action(action: Any, n: int) -> int:
    """``action`` as a Python int, checked to be an integer in ``[0, n)``.

    Called on every step, so the common cases come first and cost one type test each.
    """
    kind = type(action)
    if kind is int:  # fast path: Python code, oracles
        a = action
    elif kind is np.int64 or isinstance(action, np.integer):  # Discrete.sample(), DummyVecEnv's actions[i]
        a = int(action)
    elif isinstance(action, np.ndarray) and action.dtype.kind in "iu" and action.shape in ((), (1,)):
        a = action.item()  # a Python int for integer dtypes
    elif isinstance(action, numbers.Integral) and not isinstance(action, (bool, np.bool_)):
        a = int(action)  # int subclasses such as IntEnum members
    else:
        raise ValueError(f"action must be an integer in [0, {n}), got {action!r}")
    if 0 <= a < n:
        return a
    raise ValueError(f"action must be an integer in [0, {n}), got {action!r}")


def discrete_actions(actions: Any, n: int, num_envs: int) -> np.ndarray:
    """``actions`` as an integer array of shape ``(num_envs,)``, checked to hold integers in ``[0, n)``.

    The batched twin of :func:`discrete_action`: an integer NumPy array (or a list of Python
    ints) of shape ``(num_envs,)`` is accepted as it is; floats, bools, strings, a wrong shape
    or a value outside ``[0, n)`` raise a ``ValueError`` naming ``actions``.
    """
    arr = actions if type(actions) is np.ndarray else None
    if arr is None:
        try:
            arr = np.asarray(actions)
        except (TypeError, ValueError):  # ragged lists
            arr = np.asarray(None)
    if arr.dtype.kind not in "iu" or arr.shape != (num_envs,):
        raise ValueError(
            f"actions must be an integer array of shape ({num_envs},) with values in [0, {n}), "
            f"got {_describe(actions, arr)}"
        )
    if num_envs and (arr.min() < 0 or arr.max() >= n):
        bad = int(np.flatnonzero((arr < 0) | (arr >= n))[0])
        raise ValueError(f"actions must be integers in [0, {n}), got {arr[bad]} at index {bad}")
    return arr


def _describe(actions: Any, arr: np.ndarray) -> str:
    if isinstance(actions, np.ndarray):
        return f"a {actions.dtype} array of shape {actions.shape}"
    return f"{actions!r}"[:200]
