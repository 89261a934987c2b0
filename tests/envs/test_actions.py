"""discrete_action: the per-step action check shared by every Discrete env."""

import enum

import numpy as np
import pytest

from dg_envs.envs.actions import discrete_action


class Digit(enum.IntEnum):
    THREE = 3


@pytest.mark.parametrize(
    "action",
    [3, np.int64(3), np.int32(3), np.uint8(3), np.array(3), np.array([3]), np.array([3], np.uint16), Digit.THREE],
    ids=repr,
)
def test_integer_actions_accepted_as_python_int(action):
    a = discrete_action(action, 10)
    assert a == 3 and type(a) is int


@pytest.mark.parametrize(
    "action",
    [3.0, 2.7, "3", b"3", True, np.True_, None, [3], (3,), np.float32(3.0), np.array(3.0), np.array([[3]]),
     np.array([3, 4]), np.array([], dtype=np.int64), np.array(["3"]), 10, -1, np.int64(10), np.array([-1])],
    ids=repr,
)
def test_bad_actions_raise_naming_action(action):
    with pytest.raises(ValueError, match=r"^action must be an integer in \[0, 10\), got "):
        discrete_action(action, 10)
