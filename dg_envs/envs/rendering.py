"""Small ``rgb_array`` renderers shared by the environments.

Every env supports ``render_mode="rgb_array"`` because SB3's ``make_vec_env`` asks for it
(and video recorders need it): cells of a grid, scaled up, in a fixed palette.

>>> tokens_to_rgb(np.array([[0, 1], [1, 2]]), blank=2, cell=2).shape
(4, 4, 3)
"""

from __future__ import annotations

import numpy as np

#: Token colours (matplotlib's tab10), index = token id modulo 10.
PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
     [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
    dtype=np.uint8,
)
HIGHLIGHT = np.array([214, 39, 40], dtype=np.uint8)


def _scale(image: np.ndarray, cell: int) -> np.ndarray:
    return np.repeat(np.repeat(image, cell, axis=0), cell, axis=1)


def tokens_to_rgb(tokens: np.ndarray, blank: int, cell: int = 16) -> np.ndarray:
    """A 2-D array of token ids as coloured cells; ``blank`` cells are black."""
    tokens = np.asarray(tokens)
    image = PALETTE[tokens % len(PALETTE)]
    image[tokens == blank] = 0
    return _scale(image, cell)


def values_to_rgb(values: np.ndarray, highlight: tuple[int, int] | None = None, cell: int = 16) -> np.ndarray:
    """A 2-D array of values as grey cells (min black, max white); ``highlight`` cell in red."""
    values = np.asarray(values, dtype=np.float64)
    span = values.max() - values.min()
    grey = np.zeros_like(values) if span == 0 else (values - values.min()) / span
    image = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
    if highlight is not None:
        image[highlight] = HIGHLIGHT
    return _scale(image, cell)
