"""Bad DG / Kondo options fail when they are set, with the option's name and what it accepts."""

import math

import pytest

pytest.importorskip("ray.rllib")

from dg_envs.rllib import DGAPPOConfig, DGPPOConfig, DelightOptions, make_env_creator  # noqa: E402
from dg_envs.rllib.learners import DGAPPOTorchLearner, DGPPOTorchLearner  # noqa: E402
from dg_envs.rllib.protocol import ExecutedActionCallback  # noqa: E402

CONFIGS = (DGPPOConfig, DGAPPOConfig)


@pytest.mark.parametrize("config_class", CONFIGS)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eta": 0.0}, "eta must be a real number (inf allowed) > 0.0, got 0.0"),
        ({"eta": -1}, "eta must be a real number (inf allowed) > 0.0, got -1"),
        ({"eta": "1"}, "eta must be a real number (inf allowed) > 0.0, got '1'"),
        ({"eta": math.nan}, "eta must be a real number (inf allowed) > 0.0, got nan"),
        ({"keep_fraction": 0.0}, "keep_fraction must be a finite real number > 0.0 and <= 1.0, got 0.0"),
        ({"keep_fraction": 1.5}, "keep_fraction must be a finite real number > 0.0 and <= 1.0, got 1.5"),
        ({"keep_fraction": 0.1, "price": 0.0}, "pass either keep_fraction or price, not both (got 0.1 and 0.0)"),
        ({"price": math.inf}, "price must be a finite real number, got inf"),
        ({"kondo_eta": -0.5}, "kondo_eta must be a finite real number >= 0.0, got -0.5"),
        ({"surprisal": "log"}, "surprisal must be one of 'auto', 'raw', 'entropy_centered', 'per_dim', 'clipped'; got 'log'"),
    ],
)
def test_bad_options_raise_when_set(config_class, kwargs, message):
    with pytest.raises(ValueError) as error:
        config_class().training(**kwargs)
    assert str(error.value) == message


def test_appo_only_and_ppo_only_options():
    with pytest.raises(ValueError, match="vtrace_correction must be True or False, got 'no'"):
        DGAPPOConfig().training(vtrace_correction="no")
    with pytest.raises(TypeError, match="vtrace_correction"):  # not an option of PPO
        DGPPOConfig().training(vtrace_correction=False)
    with pytest.raises(ValueError, match="kondo_value_samples must be one of 'uniform', 'kept'; got 'all'"):
        DGPPOConfig().training(kondo_value_samples="all")
    # Set as attributes (bypassing training()), they are caught by validate(), before Ray starts.
    config = DGPPOConfig().environment("CartPole-v1")
    config.vtrace_correction = False
    with pytest.raises(ValueError, match="vtrace_correction does not apply to DGPPOConfig"):
        config.validate()
    config = DGAPPOConfig().environment("CartPole-v1")
    config.eta = 0
    with pytest.raises(ValueError, match="eta must be"):
        config.validate()


def test_valid_options_are_kept_and_the_learners_and_callback_are_the_defaults():
    config = DGAPPOConfig().training(eta=math.inf, vtrace_correction=False, keep_fraction=0.25, lr=1e-3)
    assert DelightOptions.of(config) == DelightOptions(eta=math.inf, vtrace_correction=False, keep_fraction=0.25)
    assert config.lr == 1e-3
    assert config.get_default_learner_class() is DGAPPOTorchLearner
    assert DGPPOConfig().get_default_learner_class() is DGPPOTorchLearner
    # The protocol callback stays whatever callbacks the user adds.
    from ray.rllib.callbacks.callbacks import RLlibCallback

    class Mine(RLlibCallback):
        pass

    assert DGPPOConfig().callbacks_class is ExecutedActionCallback
    assert DGPPOConfig().callbacks(Mine).callbacks_class == [ExecutedActionCallback, Mine]


def test_env_creator_checks_its_frictions_before_any_runner():
    with pytest.raises(ValueError, match="frictions for RLlib must be among"):
        make_env_creator("dg_envs/ContextualBandit-v0", frictions={"stale": 3})
    with pytest.raises(ValueError, match="p must be a probability in"):
        make_env_creator("dg_envs/ContextualBandit-v0", frictions={"bug": 1.5})


def test_a_config_that_travels_as_a_dict_keeps_the_dg_learner_and_options():
    """Ray Tune and checkpoints pass configs as dicts; the algorithm rebuilds its default config from them."""
    from dg_envs.rllib import DGAPPO, DGPPO

    for algo_class, config in ((DGPPO, DGPPOConfig().training(eta=0.3, keep_fraction=0.5)),
                               (DGAPPO, DGAPPOConfig().training(eta=0.3, vtrace_correction=False))):
        assert config.algo_class is algo_class
        rebuilt = algo_class.get_default_config().update_from_dict(config.to_dict())
        assert type(rebuilt) is type(config)
        assert DelightOptions.of(rebuilt) == DelightOptions.of(config)
        assert rebuilt.learner_class is config.learner_class
        assert rebuilt.callbacks_class is ExecutedActionCallback
