"""Train dg_envs' algorithms with RL Baselines3 Zoo (``rl_zoo3``), the Zoo's own entry points.

The Zoo picks an algorithm by name from its ``ALGOS`` table and its hyperparameters from a
YAML file per algorithm, keyed by env id. :func:`register_algos` adds ours to that table;
``python -m dg_envs.zoo`` is the Zoo's command line (``train``, ``enjoy``, ``plot_train``...)
with ours registered and, for our algorithms, this package's YAML files as the default
``--conf-file``::

    pip install -e ".[zoo]"
    python -m dg_envs.zoo train --algo dgppo --env InvertedPendulum-v5 -f logs/
    python -m dg_envs.zoo enjoy --algo dgppo --env InvertedPendulum-v5 -f logs/ --no-render

Every other Zoo flag works as documented (``-n``, ``--seed``, ``-params``, ``--eval-freq``,
``--conf-file`` for your own YAML...).

Example:
    >>> from dg_envs.zoo import ZOO_ALGOS, hyperparams_path
    >>> sorted(ZOO_ALGOS)
    ['dga2c', 'dgppo', 'iwpg', 'kondoa2c', 'kondoppo', 'pg']
    >>> hyperparams_path("dgppo").name
    'dgppo.yml'
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dg_envs.algos import ALGORITHMS

#: Registry names the Zoo already has (its ``ppo`` and ``a2c`` are SB3's own): not overridden.
ZOO_OWN = frozenset({"PPO", "A2C"})

HYPERPARAMS_DIR = Path(__file__).parent / "hyperparams"

#: The Zoo's names for our algorithms: :data:`dg_envs.algos.ALGORITHMS` in lower case (as the
#: Zoo's own ``ppo``, ``a2c``...), those with a hyperparameter file here, less the names the
#: Zoo already has. (The reference methods, ``dgpg``, ``pmpo``..., have no YAML yet.)
ZOO_ALGOS = {
    name.lower(): cls
    for name, cls in ALGORITHMS.items()
    if name not in ZOO_OWN and (HYPERPARAMS_DIR / f"{name.lower()}.yml").exists()
}


def hyperparams_path(algo: str) -> Path:
    """The YAML file of our hyperparameters for ``algo`` (one of :data:`ZOO_ALGOS`)."""
    if algo not in ZOO_ALGOS:
        raise ValueError(f"algo must be one of {sorted(ZOO_ALGOS)}, got {algo!r}")
    return HYPERPARAMS_DIR / f"{algo}.yml"


def load_hyperparams(algo: str, env_id: str) -> dict:
    """Our YAML entry for ``algo`` on ``env_id``, as the Zoo reads it (merge keys resolved).

    >>> load_hyperparams("dgppo", "InvertedPendulum-v5")["n_steps"]
    1024
    """
    import yaml

    table = yaml.safe_load(hyperparams_path(algo).read_text())
    if env_id not in table:
        raise ValueError(f"env_id: {hyperparams_path(algo).name} has settings for {sorted(table)}, got {env_id!r}")
    return dict(table[env_id])


def register_algos() -> None:
    """Add our algorithms to the Zoo's ``ALGOS`` table (in place: every Zoo module sees them)."""
    try:
        from rl_zoo3.utils import ALGOS
    except ImportError as error:
        raise ImportError('dg_envs.zoo needs RL Baselines3 Zoo: pip install -e ".[zoo]"') from error
    ALGOS.update(ZOO_ALGOS)


def _with_default_conf_file(argv: list[str]) -> list[str]:
    """``argv`` plus ``--conf-file <our YAML>`` when it trains one of ours and names no config.

    >>> _with_default_conf_file(["train", "--algo", "dgppo", "--env", "Hopper-v5"])[-2:]  # doctest: +ELLIPSIS
    ['--conf-file', '.../dg_envs/zoo/hyperparams/dgppo.yml']
    >>> _with_default_conf_file(["train", "--algo", "ppo", "--env", "Hopper-v5"])
    ['train', '--algo', 'ppo', '--env', 'Hopper-v5']
    """
    if not argv or argv[0] != "train":
        return argv
    # The two flags as the Zoo's own parser reads them (both spellings, "--algo=x" too).
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--algo")
    parser.add_argument("-conf", "--conf-file")
    known, _ = parser.parse_known_args(argv[1:])
    if known.conf_file is not None or known.algo not in ZOO_ALGOS:
        return argv
    return [*argv, "--conf-file", str(hyperparams_path(known.algo))]


#: The Zoo's scripts, as ``rl_zoo3.cli`` names them (imported on use: the plots need the Zoo's
#: ``plots`` extra, seaborn and pandas, which training does not).
ZOO_SCRIPTS = {
    "train": ("rl_zoo3.train", "train"),
    "enjoy": ("rl_zoo3.enjoy", "enjoy"),
    "plot_train": ("rl_zoo3.plots.plot_train", "plot_train"),
    "plot_from_file": ("rl_zoo3.plots.plot_from_file", "plot_from_file"),
    "all_plots": ("rl_zoo3.plots.all_plots", "all_plots"),
}


def main(argv: list[str] | None = None) -> None:
    """``python -m dg_envs.zoo SCRIPT [ARGS]``: the Zoo's command line with our algorithms."""
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ZOO_SCRIPTS:
        raise SystemExit(f"usage: python -m dg_envs.zoo {{{','.join(ZOO_SCRIPTS)}}} [ARGS]  (got {argv[:1]})")
    register_algos()
    module, function = ZOO_SCRIPTS[argv[0]]
    script = getattr(importlib.import_module(module), function)
    sys.argv = [f"dg_envs.zoo {argv[0]}", *_with_default_conf_file(argv)[1:]]  # the Zoo parses sys.argv
    script()
