"""``DGPPOConfig`` and ``DGAPPOConfig``: RLlib's PPO / APPO configs with the DG and Kondo options.

Use them as RLlib's own configs; ``.training()`` also takes the options of
:class:`~dg_envs.rllib.options.DelightOptions`, checked at once, and the default learner class
is the DG one (:mod:`dg_envs.rllib.learners`). They build the algorithms :class:`DGPPO` and
:class:`DGAPPO` (RLlib's PPO and APPO whose default config is ours), so a config that travels
as a dict (Ray Tune's ``param_space``, a checkpoint) comes back as a DG config and keeps the DG
learner, where RLlib's ``PPO`` would rebuild a ``PPOConfig`` and its plain learner.

>>> from dg_envs.rllib import DGAPPOConfig
>>> config = DGAPPOConfig().training(eta=1.0, vtrace_correction=False, lr=5e-4)
>>> config.eta, config.vtrace_correction, config.get_default_learner_class().__name__
(1.0, False, 'DGAPPOTorchLearner')
>>> DGAPPOConfig().training(eta=0)
Traceback (most recent call last):
...
ValueError: eta must be a real number (inf allowed) > 0.0, got 0
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.appo import APPO, APPOConfig
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback

from dg_envs.rllib.options import DelightOptions

__all__ = ["DGAPPO", "DGAPPOConfig", "DGPPO", "DGPPOConfig"]


class _DelightConfigMixin:
    """Holds the :class:`DelightOptions` as config attributes and checks them whenever they are set."""

    #: Options this algorithm does not use (rejected when given a non-default value).
    _unused_options: tuple[str, ...] = ()

    def _init_delight_options(self) -> None:
        for name, value in DelightOptions().as_dict().items():
            setattr(self, name, value)
        self._add_protocol_callback()

    def callbacks(self, callbacks_class=NotProvided, **kwargs):
        super().callbacks(callbacks_class, **kwargs)  # type: ignore[misc]
        self._add_protocol_callback()
        return self

    def _add_protocol_callback(self) -> None:
        """Keep :class:`ExecutedActionCallback` among the callback classes, whatever else the user adds."""
        from dg_envs.rllib.protocol import ExecutedActionCallback

        classes = self.callbacks_class  # type: ignore[attr-defined]
        classes = list(classes) if isinstance(classes, (list, tuple)) else [classes]
        classes = [c for c in classes if c is not RLlibCallback]  # RLlib's default: a no-op
        if not any(isinstance(c, type) and issubclass(c, ExecutedActionCallback) for c in classes):
            classes.insert(0, ExecutedActionCallback)
        self.callbacks_class = classes[0] if len(classes) == 1 else classes

    def _set_delight_options(self, given: dict[str, Any]) -> None:
        given = {name: value for name, value in given.items() if value is not NotProvided}
        options = DelightOptions(**{**DelightOptions.of(self).as_dict(), **given})  # raises on a bad value
        for name, value in options.as_dict().items():
            setattr(self, name, value)

    def _validate_delight_options(self) -> None:
        options = DelightOptions.of(self)  # attributes may have been set directly
        default = DelightOptions()
        for name in self._unused_options:
            if getattr(options, name) != getattr(default, name):
                raise ValueError(f"{name} does not apply to {type(self).__name__} (got {getattr(options, name)!r})")
        if not self.enable_rl_module_and_learner:  # type: ignore[attr-defined]
            raise ValueError(f"{type(self).__name__} runs on RLlib's new API stack only "
                             "(api_stack(enable_rl_module_and_learner=True, ...))")
        if self.framework_str != "torch":  # type: ignore[attr-defined]
            raise ValueError(f"{type(self).__name__} needs framework='torch', got {self.framework_str!r}")


class DGPPOConfig(_DelightConfigMixin, PPOConfig):
    """RLlib's ``PPOConfig`` whose learner weights each sample's clipped surrogate by the DG gate.

    ``.training(eta=1.0, surprisal="auto", keep_fraction=None, price=None, kondo_eta=0.0,
    kondo_value_samples="uniform", ...)`` plus every ``PPOConfig.training`` argument. With
    ``keep_fraction`` or ``price`` it is Kondo-PPO (real backward skipping per minibatch).
    Learner: :class:`dg_envs.rllib.learners.DGPPOTorchLearner`.

    >>> DGPPOConfig().training(keep_fraction=0.03, price=0.0)
    Traceback (most recent call last):
    ...
    ValueError: pass either keep_fraction or price, not both (got 0.03 and 0.0)
    """

    _unused_options = ("vtrace_correction",)

    def __init__(self, algo_class: Any = None) -> None:
        super().__init__(algo_class=algo_class or DGPPO)
        self._init_delight_options()

    def training(self, *, eta=NotProvided, surprisal=NotProvided, keep_fraction=NotProvided, price=NotProvided,
                 kondo_eta=NotProvided, kondo_value_samples=NotProvided, **kwargs):
        super().training(**kwargs)
        self._set_delight_options(dict(eta=eta, surprisal=surprisal, keep_fraction=keep_fraction, price=price,
                                       kondo_eta=kondo_eta, kondo_value_samples=kondo_value_samples))
        return self

    def validate(self) -> None:
        super().validate()
        self._validate_delight_options()

    def get_default_learner_class(self):
        from dg_envs.rllib.learners import DGPPOTorchLearner

        return DGPPOTorchLearner


class DGAPPOConfig(_DelightConfigMixin, APPOConfig):
    """RLlib's ``APPOConfig`` whose learner gates each sample's policy term by DG.

    ``.training(eta=1.0, vtrace_correction=True, surprisal="auto", keep_fraction=None,
    price=None, kondo_eta=0.0, ...)`` plus every ``APPOConfig.training`` argument.
    ``vtrace_correction=False`` is DG without any importance correction (the paper's setting).
    Kondo here is masked, not skipped (see :mod:`dg_envs.rllib.learners`).
    Learner: :class:`dg_envs.rllib.learners.DGAPPOTorchLearner`.

    >>> DGAPPOConfig().training(keep_fraction=1.5)
    Traceback (most recent call last):
    ...
    ValueError: keep_fraction must be a finite real number > 0.0 and <= 1.0, got 1.5
    """

    _unused_options = ("kondo_value_samples",)

    def __init__(self, algo_class: Any = None) -> None:
        super().__init__(algo_class=algo_class or DGAPPO)
        self._init_delight_options()

    def training(self, *, eta=NotProvided, vtrace_correction=NotProvided, surprisal=NotProvided,
                 keep_fraction=NotProvided, price=NotProvided, kondo_eta=NotProvided, **kwargs):
        super().training(**kwargs)
        self._set_delight_options(dict(eta=eta, vtrace_correction=vtrace_correction, surprisal=surprisal,
                                       keep_fraction=keep_fraction, price=price, kondo_eta=kondo_eta))
        return self

    def validate(self) -> None:
        super().validate()  # (RLlib's APPO itself rejects vtrace=False)
        self._validate_delight_options()

    def get_default_learner_class(self):
        from dg_envs.rllib.learners import DGAPPOTorchLearner

        return DGAPPOTorchLearner


class DGPPO(PPO):
    """RLlib's PPO with :class:`DGPPOConfig` as its default config (``tune.Tuner(DGPPO, param_space=config)``)."""

    @classmethod
    def get_default_config(cls) -> DGPPOConfig:
        return DGPPOConfig()


class DGAPPO(APPO):
    """RLlib's APPO with :class:`DGAPPOConfig` as its default config."""

    @classmethod
    def get_default_config(cls) -> DGAPPOConfig:
        return DGAPPOConfig()
