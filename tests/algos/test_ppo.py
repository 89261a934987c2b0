"""DGPPO and KondoPPO: learning on the contextual bandit, save/load, Box actions, screening."""

import os
import sys

import numpy as np
import pytest
import torch as th

sys.path.insert(0, os.path.dirname(__file__))
from _algos_test_utils import bandit_accuracy, bandit_venv  # noqa: E402

from dg_envs.algos import DGPPO, KondoPPO  # noqa: E402

KW = dict(n_steps=16, batch_size=64, n_epochs=4, learning_rate=3e-3, seed=0, device="cpu")
CASES = [(DGPPO, {"eta": 1.0}), (KondoPPO, {}), (KondoPPO, {"keep_fraction": 0.25})]
IDS = ["DGPPO", "KondoPPO-price0", "KondoPPO-rho0.25"]


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
    model = cls("MlpPolicy", bandit_venv(n_envs=2), policy_kwargs=dict(net_arch=[16]), **dict(KW, batch_size=32), **extra)
    model.learn(64)
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", device="cpu")
    obs = np.eye(5, dtype=np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    for name, value in extra.items():
        assert getattr(loaded, name) == value


@pytest.mark.parametrize("surprisal", ["auto", "raw", "entropy_centered", "per_dim", "clipped"])
def test_box_actions_all_surprisals(surprisal):
    model = DGPPO("MlpPolicy", "Pendulum-v1", surprisal=surprisal, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    assert model._surprisal_kind() == ("entropy_centered" if surprisal == "auto" else surprisal)
    assert 0.0 < model.logger.name_to_value["train/gate_mean"] < 1.0


def test_kondo_ppo_screens_with_the_current_policy():
    model = KondoPPO("MlpPolicy", bandit_venv(n_envs=2), keep_fraction=0.25, value_samples="kept",
                     **dict(KW, n_steps=32, batch_size=32, n_epochs=2))
    sizes = []
    orig = type(model.policy).evaluate_actions

    def spy(self, obs, actions):
        sizes.append((th.is_grad_enabled(), len(actions)))
        return orig(self, obs, actions)

    type(model.policy).evaluate_actions = spy
    try:
        model.learn(64)
    finally:
        type(model.policy).evaluate_actions = orig
    # per minibatch: one no_grad screening forward on 32, one differentiable forward on 8.
    assert sizes == [(False, 32), (True, 8)] * 4
    assert model.logger.name_to_value["train/kondo_backward_samples"] == 4 * 8
