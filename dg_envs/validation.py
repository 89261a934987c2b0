"""Argument checks shared by every constructor and entry point: one clear error, raised early.

Each check returns the normalised value (a Python ``float``, ``int``, ``bool`` or ``str``) or
raises a ``ValueError`` that names the argument and what it accepts. NumPy scalars
(``np.float32(0.5)``, ``np.int64(3)``) are accepted wherever a Python number is; ``bool`` is
never taken for a number.

>>> check_real(np.float32(0.25), "eta", low=0.0, low_open=True)
0.25
>>> check_real(True, "eta")
Traceback (most recent call last):
...
ValueError: eta must be a finite real number, got True
>>> check_choice("episode", "per", ("step", "episode"))
'episode'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["check_bool", "check_choice", "check_int", "check_probability", "check_real"]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_real(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """``value`` as a float, checked to be a real number (finite unless ``allow_inf``) in the range.

    >>> check_real(2, "lag_scale", low=0.0)
    2.0
    >>> check_real(-1.0, "noise_std", low=0.0)
    Traceback (most recent call last):
    ...
    ValueError: noise_std must be a finite real number >= 0.0, got -1.0
    """
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    kind = "a real number (inf allowed)" if allow_inf else "a finite real number"
    message = f"{name} must be {kind}{' ' + ' and '.join(bounds) if bounds else ''}, got {value!r}"
    if not _is_real(value):
        raise ValueError(message)
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise ValueError(message)
    if low is not None and (x <= low if low_open else x < low):
        raise ValueError(message)
    if high is not None and (x >= high if high_open else x > high):
        raise ValueError(message)
    return x


def check_probability(value: Any, name: str = "p") -> float:
    """A probability in [0, 1].

    >>> check_probability(np.float64(0.1))
    0.1
    """
    if not _is_real(value) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_int(value: Any, name: str, low: int | None = None) -> int:
    """An integer (Python or NumPy, not bool), ``>= low`` when given.

    >>> check_int(np.int64(3), "lag", low=0)
    3
    >>> check_int(1.5, "lag", low=0)
    Traceback (most recent call last):
    ...
    ValueError: lag must be an integer >= 0, got 1.5
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or (low is not None and value < low):
        raise ValueError(f"{name} must be an integer{f' >= {low}' if low is not None else ''}, got {value!r}")
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """``True`` or ``False`` (Python or NumPy); nothing else, so ``"no"`` is not taken for True.

    >>> check_bool("no", "spare_discoveries")
    Traceback (most recent call last):
    ...
    ValueError: spare_discoveries must be True or False, got 'no'
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value: Any, name: str, accepted: Sequence[str]) -> str:
    """One of the ``accepted`` strings.

    >>> check_choice("ppo", "method", ("pg", "dg"))
    Traceback (most recent call last):
    ...
    ValueError: method must be one of 'pg', 'dg'; got 'ppo'
    """
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in accepted)}; got {value!r}")
    return value
