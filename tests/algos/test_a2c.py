"""DGA2C, KondoA2C, PG, IWPG: learning on the contextual bandit, save/load, logging, SB3 conventions."""

import os
import sys

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

sys.path.insert(0, os.path.dirname(__file__))
from _algos_test_utils import bandit_accuracy, bandit_venv  # noqa: E402

from dg_envs.algos import DGA2C, IWPG, PG, KondoA2C  # noqa: E402

KW = dict(n_steps=4, learning_rate=3e-3, seed=0, device="cpu")
CASES = [
    (DGA2C, {"eta": 1.0}),
    (KondoA2C, {}),  # price 0: keep positive delight
    (KondoA2C, {"keep_fraction": 0.5}),
    (PG, {}),
    (IWPG, {"max_weight": 5.0}),
]
IDS = ["DGA2C", "KondoA2C-price0", "KondoA2C-rho0.5", "PG", "IWPG"]


@pytest.mark.parametrize("cls, extra", CASES, ids=IDS)
def test_learns_contextual_bandit(cls, extra):
    """5 contexts x 5 arms, reward 1{correct arm}: random play scores 1/5 = 0.2.

    Required: the stochastic policy's expected accuracy >= 0.9 after 4096 steps (seconds).
    """
    model = cls("MlpPolicy", bandit_venv(), policy_kwargs=dict(net_arch=[32]), **KW, **extra)
    model.learn(4096)
    assert bandit_accuracy(model) >= 0.9


@pytest.mark.parametrize("cls, extra", CASES, ids=IDS)
def test_save_load_round_trip(cls, extra, tmp_path):
    model = cls("MlpPolicy", bandit_venv(n_envs=2), policy_kwargs=dict(net_arch=[16]), **KW, **extra)
    model.learn(64)
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", device="cpu")
    obs = np.eye(5, dtype=np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    for name, value in extra.items():
        assert getattr(loaded, name) == value
    assert type(loaded).__name__ == cls.__name__
    loaded.set_env(bandit_venv(n_envs=2))
    loaded.learn(32)  # keeps training after load


def test_custom_args_round_trip(tmp_path):
    model = KondoA2C("MlpPolicy", bandit_venv(n_envs=2), eta=0.5, keep_fraction=0.1, kondo_eta=0.2,
                     surprisal="clipped", value_samples="kept", **KW)
    model.save(tmp_path / "k")
    loaded = KondoA2C.load(tmp_path / "k", device="cpu")
    assert (loaded.eta, loaded.keep_fraction, loaded.kondo_eta, loaded.surprisal, loaded.value_samples, loaded.screen) == (
        0.5, 0.1, 0.2, "clipped", "kept", "cached")


class KeyRecorder(BaseCallback):
    def __init__(self):
        super().__init__()
        self.keys = set()

    def _on_step(self):
        return True

    def _on_rollout_start(self):
        self.keys |= set(self.logger.name_to_value)


@pytest.mark.parametrize(
    "cls, expected",
    [
        (DGA2C, {"train/gate_mean", "train/delight_mean", "train/kondo_kept_fraction", "train/kondo_backward_samples"}),
        (KondoA2C, {"train/gate_mean", "train/delight_mean", "train/kondo_kept_fraction", "train/kondo_backward_samples"}),
        (PG, {"train/delight_mean", "train/kondo_backward_samples"}),
        (IWPG, {"train/iw_mean", "train/iw_max", "train/iw_truncated_fraction", "train/kondo_backward_samples"}),
    ],
)
def test_log_keys_callbacks_tensorboard_progress_bar(cls, expected, tmp_path):
    extra = {"max_weight": 2.0} if cls is IWPG else {}
    model = cls("MlpPolicy", bandit_venv(n_envs=2), tensorboard_log=str(tmp_path), **KW, **extra)
    recorder = KeyRecorder()
    model.learn(64, callback=recorder, progress_bar=True)
    assert expected <= recorder.keys | set(model.logger.name_to_value)
    assert any(tmp_path.iterdir())  # a TensorBoard run directory was written
    if cls is PG:
        assert "train/gate_mean" not in model.logger.name_to_value  # PG has no gate


def test_kondo_a2c_gate_mean_and_fraction():
    model = KondoA2C("MlpPolicy", bandit_venv(), keep_fraction=0.25, **KW)
    model.learn(64)
    logged = model.logger.name_to_value
    assert logged["train/kondo_kept_fraction"] == 0.25
    assert 0.0 < logged["train/gate_mean"] < 1.0
