"""RL Baselines3 Zoo integration: our YAML files build every algorithm, and the Zoo's own
``train`` / ``enjoy`` scripts run ours end to end (in a subprocess, as a user runs them)."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest

from dg_envs.envs import MUJOCO_IDS
from dg_envs.zoo import ZOO_ALGOS, _with_default_conf_file, hyperparams_path, load_hyperparams, register_algos

pytest.importorskip("rl_zoo3")


@pytest.mark.parametrize("algo", sorted(ZOO_ALGOS))
def test_every_yaml_entry_builds_its_algorithm(algo):
    for env_id in MUJOCO_IDS:
        params = load_hyperparams(algo, env_id)
        assert params.pop("n_timesteps") > 0 and params.pop("n_envs") == 1
        model = ZOO_ALGOS[algo](params.pop("policy"), gym.make(env_id), device="cpu", **params)
        assert model.n_steps == params["n_steps"]


def test_zoo_algos_are_the_registry_in_lower_case():
    """Our six under the Zoo's lower-case names, the very classes of dg_envs.algos.ALGORITHMS;
    the registry's relabelled "PPO"/"A2C" leave the Zoo's own ``ppo``/``a2c`` alone."""
    from dg_envs.algos import ALGORITHMS, get_algorithm

    assert sorted(ZOO_ALGOS) == ["dga2c", "dgppo", "iwpg", "kondoa2c", "kondoppo", "pg"]
    assert all(cls is get_algorithm(name) for name, cls in ZOO_ALGOS.items())
    assert ALGORITHMS["PPO"] not in ZOO_ALGOS.values() and ALGORITHMS["A2C"] not in ZOO_ALGOS.values()


def test_register_algos_fills_the_zoo_table():
    from rl_zoo3 import ALGOS

    register_algos()
    assert all(ALGOS[name] is cls for name, cls in ZOO_ALGOS.items())
    assert "ppo" in ALGOS  # the Zoo's own stay


def test_default_conf_file_only_for_ours_and_never_over_the_users():
    ours = _with_default_conf_file(["train", "--algo=dgppo", "--env", "Hopper-v5"])
    assert ours[-2:] == ["--conf-file", str(hyperparams_path("dgppo"))]
    mine = ["train", "--algo", "dgppo", "-conf", "my.yml"]
    assert _with_default_conf_file(mine) == mine
    assert _with_default_conf_file(["enjoy", "--algo", "dgppo"]) == ["enjoy", "--algo", "dgppo"]


def test_bad_names_raise_clear_errors():
    with pytest.raises(ValueError, match="algo must be one of"):
        hyperparams_path("dqn")
    with pytest.raises(ValueError, match="env_id"):
        load_hyperparams("dgppo", "CartPole-v1")
    result = subprocess.run([sys.executable, "-m", "dg_envs.zoo", "fly"], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "usage: python -m dg_envs.zoo" in result.stderr


def test_zoo_train_then_enjoy_dgppo(tmp_path):
    """The README's command, at a smoke-test budget: the Zoo trains DGPPO with our YAML and saves it."""
    from dg_envs.algos import DGPPO

    train = [sys.executable, "-m", "dg_envs.zoo", "train", "--algo", "dgppo", "--env", "InvertedPendulum-v5",
             "-n", "1024", "-params", "n_steps:512", "--seed", "3", "--eval-freq", "-1", "-f", str(tmp_path)]
    result = subprocess.run(train, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dgppo.yml" in result.stdout  # "Loading hyperparameters from: .../dgppo.yml"
    saved = tmp_path / "dgppo" / "InvertedPendulum-v5_1" / "InvertedPendulum-v5.zip"
    model = DGPPO.load(saved, device="cpu")
    # Our YAML's batch size and learning rate, the command line's n_steps, two updates done.
    assert (model.n_steps, model.batch_size, model.lr_schedule(1.0)) == (512, 256, 1e-3)
    assert model.num_timesteps == 1024 and model._n_updates == 2 * model.n_epochs
    enjoy = [sys.executable, "-m", "dg_envs.zoo", "enjoy", "--algo", "dgppo", "--env", "InvertedPendulum-v5",
             "-f", str(tmp_path), "--no-render", "-n", "50"]
    result = subprocess.run(enjoy, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
