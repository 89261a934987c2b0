"""The DG / Kondo options of the RLlib learners: names, defaults and checks, written once.

:class:`DelightOptions` is what :class:`~dg_envs.rllib.DGPPOConfig` and
:class:`~dg_envs.rllib.DGAPPOConfig` accept in ``.training(...)`` and what their learners read
back from the config; every check runs when the option is set (and again in
``config.validate()``), so a bad value fails before Ray starts anything.

>>> DelightOptions(eta=0.5, keep_fraction=0.03).kondo
True
>>> DelightOptions(vtrace_correction="no")
Traceback (most recent call last):
...
ValueError: vtrace_correction must be True or False, got 'no'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from dg_envs.algos.weighting import SURPRISALS
from dg_envs.validation import check_bool, check_choice, check_real

__all__ = ["DelightOptions", "KONDO_VALUE_SAMPLES"]

#: Which samples the critic learns from under Kondo (PPO; see :class:`DelightOptions`).
KONDO_VALUE_SAMPLES = ("uniform", "kept")


@dataclass(frozen=True)
class DelightOptions:
    """DG and Kondo settings of an RLlib learner (arXiv 2603.14608, 2603.20526).

    Args:
        eta: DG gate temperature ``w = sigmoid(A * l / eta)``, > 0 (``inf``: ``w = 1/2``, PG at
            half step). In the units of the advantage the loss uses: PPO's advantages are
            standardised over the train batch by RLlib's GAE connector, APPO's V-trace
            advantages are raw (reward units).
        surprisal: how ``l`` is computed from the current learner's log-prob (see
            :func:`dg_envs.algos.weighting.surprisal`); ``"auto"`` is ``-log pi`` for discrete
            actions and ``-log pi - H(pi)`` for Box actions.
        keep_fraction: Kondo: keep the top ``keep_fraction`` of each minibatch by delight
            (hard gate), in (0, 1]. Exclusive with ``price``.
        price: Kondo: keep samples whose delight exceeds ``price`` (``kondo_eta = 0``) or with
            probability ``sigmoid((chi - price) / kondo_eta)``.
        kondo_eta: Kondo gate temperature, >= 0 (0: hard threshold).
        kondo_value_samples: PPO only: ``"uniform"`` (default) trains the critic on a uniform
            random sample as large as the kept set, ``"kept"`` on the kept samples.
        vtrace_correction: APPO only: ``True`` keeps APPO's V-trace value targets, V-trace
            advantages and clipped importance-ratio surrogate, each sample's surrogate times the
            gate; ``False`` drops every importance correction (DG as in the paper): value
            targets and advantages as V-trace computes them with ``rho = c = 1`` and the policy
            term ``-w * A * log pi`` without ratio or clipping.
    """

    eta: float = 1.0
    surprisal: str = "auto"
    keep_fraction: float | None = None
    price: float | None = None
    kondo_eta: float = 0.0
    kondo_value_samples: str = "uniform"
    vtrace_correction: bool = True

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("eta", check_real(self.eta, "eta", low=0.0, low_open=True, allow_inf=True))
        set_("surprisal", check_choice(self.surprisal, "surprisal", SURPRISALS))
        if self.keep_fraction is not None and self.price is not None:
            raise ValueError(
                f"pass either keep_fraction or price, not both (got {self.keep_fraction!r} and {self.price!r})")
        if self.keep_fraction is not None:
            set_("keep_fraction", check_real(self.keep_fraction, "keep_fraction", low=0.0, low_open=True, high=1.0))
        if self.price is not None:
            set_("price", check_real(self.price, "price"))
        set_("kondo_eta", check_real(self.kondo_eta, "kondo_eta", low=0.0))
        set_("kondo_value_samples", check_choice(self.kondo_value_samples, "kondo_value_samples", KONDO_VALUE_SAMPLES))
        set_("vtrace_correction", check_bool(self.vtrace_correction, "vtrace_correction"))

    @property
    def kondo(self) -> bool:
        """Whether the Kondo gate is on (``keep_fraction`` or ``price`` given)."""
        return self.keep_fraction is not None or self.price is not None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in order (each is also an attribute of the DG configs)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, config: Any) -> DelightOptions:
        """The options held by an RLlib config (its attributes of the same names), checked."""
        return cls(**{name: getattr(config, name) for name in cls.names()})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
