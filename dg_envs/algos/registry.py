"""One table of algorithm names -> classes, used by the experiments, the Zoo and the CLI.

Names are the class names of :mod:`dg_envs.algos`, except that ``"PPO"`` and ``"A2C"`` are
SB3's algorithms trained on the executed action (:class:`RelabelledPPO`,
:class:`RelabelledA2C`: the fair baselines under frictions). Look-ups ignore case, so the
Zoo's lower-case ``dgppo`` finds ``DGPPO``.

>>> get_algorithm("dgppo").__name__
'DGPPO'
>>> get_algorithm("PPO").__name__
'RelabelledPPO'
>>> get_algorithm("SAC")
Traceback (most recent call last):
...
ValueError: algorithm must be one of 'A2C', 'CE', 'DGA2C', 'DGPG', 'DGPPO', 'IWPG', 'KondoA2C', 'KondoPG', 'KondoPPO', 'PG', 'PMPO', 'PPO', 'ReportedRatioPG', 'ReportedRatioPPO' (any case); got 'SAC'
"""

from __future__ import annotations

from dg_envs.algos.a2c import DGA2C, IWPG, PG, KondoA2C, RelabelledA2C
from dg_envs.algos.ppo import DGPPO, KondoPPO, RelabelledPPO
from dg_envs.algos.reference import DGPG, PMPO, CrossEntropyOracle, KondoPG, ReportedRatioPG, ReportedRatioPPO

__all__ = ["ALGORITHMS", "get_algorithm"]

#: Algorithm name -> class. Our six; SB3's PPO and A2C relabelled to the executed action; and
#: the papers' reference methods (:mod:`dg_envs.algos.reference`: one Adam step per batch,
#: group baseline, no critic), with ``"CE"`` the supervised cross-entropy oracle.
ALGORITHMS: dict[str, type] = {
    "DGPPO": DGPPO,
    "KondoPPO": KondoPPO,
    "DGA2C": DGA2C,
    "KondoA2C": KondoA2C,
    "PG": PG,
    "IWPG": IWPG,
    "PPO": RelabelledPPO,
    "A2C": RelabelledA2C,
    "DGPG": DGPG,
    "ReportedRatioPG": ReportedRatioPG,
    "ReportedRatioPPO": ReportedRatioPPO,
    "PMPO": PMPO,
    "KondoPG": KondoPG,
    "CE": CrossEntropyOracle,
}


def get_algorithm(name: str) -> type:
    """The class registered as ``name`` (case-insensitive); ``ValueError`` naming the choices otherwise."""
    by_lower = {key.lower(): cls for key, cls in ALGORITHMS.items()}
    if not isinstance(name, str) or name.lower() not in by_lower:
        choices = ", ".join(repr(key) for key in sorted(ALGORITHMS))
        raise ValueError(f"algorithm must be one of {choices} (any case); got {name!r}")
    return by_lower[name.lower()]
