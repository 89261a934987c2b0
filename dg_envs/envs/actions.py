"""The per-step action check shared by the ``Discrete`` environments: one rule, one message.

An action is accepted when it is an integer in ``[0, n)``: a Python ``int``, a NumPy integer
scalar (what ``Discrete.sample()`` and SB3's ``DummyVecEnv`` pass), or an integer NumPy array
of shape ``()`` or ``(1,)`` (what ``model.predict`` returns for one observation). Anything else
(``1.7``, ``"1"``, ``True``, ``np.array(1.0)``) raises a ``ValueError`` naming ``action``,
instead of being truncated to an arm.

>>> discrete_action(np.array([3]), 10)
3
>>> discrete_action(1.7, 10)
Traceback (most recent call last):
...
ValueError: action must be an integer in [0, 10), got 1.7
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["discrete_action"]


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
