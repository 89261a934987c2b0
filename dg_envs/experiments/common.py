"""What every experiment shares: seeds, mean-and-spread tables, figures, output folders.

An experiment (bsuite's split) is a module with

* ``NAME``: its name, as ``dg-envs experiment NAME`` takes it;
* ``Config``: a dataclass, each field documented; ``Config.quick()`` gives the minutes-long variant;
* ``run(config, progress=True, tensorboard_log=None, out_dir=".") -> list[dict]``: the sweep, one
  flat record per run. Every experiment's ``run`` has this one signature; ``out_dir`` is where a
  ``run`` saves artefacts besides the records (``mujoco``'s trained expert), and the others
  ignore it;
* ``analyse(records, out_dir) -> str``: writes ``<name>.md`` and ``<name>.png`` (with
  :func:`write_page`), returns the table.

Algorithms are named as in :data:`dg_envs.algos.ALGORITHMS` and their classes come from
:func:`dg_envs.algos.get_algorithm`; an experiment keeps per-method settings (keyword
arguments, a record label) as data in its ``Config``, never a table of classes of its own.

:func:`dg_envs.experiments.run_experiment` ties them together: it checks the output folder
(:func:`prepare_out_dir`) before the sweep starts, and saves the raw records.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

#: Where committed results live, relative to the repository root.
RESULTS_DIR = Path("docs") / "results"


def prepare_out_dir(out_dir: Path | str, name: str = "out_dir") -> Path:
    """Create the output folder ``out_dir`` if needed and check that files can be written in it.

    Called before a sweep starts, so that a bad folder fails in a second instead of losing the
    records of a finished sweep. A probe file is created in the folder and deleted again.
    ``ValueError`` naming ``name`` (the argument, or the command-line option) otherwise.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     prepare_out_dir(f.name)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: out_dir must be a writable folder; '...' is an existing file
    """
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} must be a writable folder; {str(path)!r} is an existing file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{name} must be a writable folder; cannot create {str(path)!r}: "
                         f"{error.strerror or error}") from error
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".dg_envs_probe_"):
            pass
    except OSError as error:
        raise ValueError(f"{name} must be a writable folder; cannot write in {str(path)!r}: "
                         f"{error.strerror or error}") from error
    return path


def mean_spread(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value).

    >>> mean_spread([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    arr = np.asarray(list(values), dtype=float)
    spread = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), spread


def format_mean_spread(values: Iterable[float], fmt: str = ".3g") -> str:
    """``"mean ± std (n=k)"`` for a table cell.

    >>> format_mean_spread([0.1, 0.3])
    '0.2 ± 0.141 (n=2)'
    """
    values = list(values)
    mean, spread = mean_spread(values)
    return f"{mean:{fmt}} ± {spread:{fmt}} (n={len(values)})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table.

    >>> print(markdown_table(["a", "b"], [[1, 2]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def save_records(records: list[dict], out_dir: Path, name: str) -> Path:
    """Write the raw per-run records next to the table (JSON lines), so analyses can be redone."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.jsonl"
    with path.open("w") as f:
        for record in records:
            f.write(json.dumps(record, default=float) + "\n")
    return path


def load_records(path: Path) -> list[dict]:
    """Read records written by :func:`save_records`."""
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def write_page(out_dir: Path, name: str, table: str, fig) -> str:
    """Write ``name.md`` (the table under a title) and ``name.png`` (the figure); return the table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}.png", dpi=120)
    (out_dir / f"{name}.md").write_text(f"# {name}\n\n{table}\n")
    return table


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.8):
    """A matplotlib figure on the non-interactive Agg backend (no display needed)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]
