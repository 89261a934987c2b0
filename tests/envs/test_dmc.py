"""DeepMind Control Suite ids (``dg_envs.envs.dmc``): registration without dm_control, the checkers
clean and under every friction, seeded determinism, and every algorithm on a Suite task.

Tests that make a Suite env skip where the ``dmc`` extra is not installed (or ``mujoco`` >= 4,
under which dm_control cannot compile its models).
"""

import importlib.util
import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dg_envs  # noqa: F401  (registers the ids)
from dg_envs.envs import DMC_IDS, DMC_TASKS, dmc_id
from dg_envs.envs.dmc import make_dmc


def _dmc_usable() -> bool:
    if importlib.util.find_spec("dm_control") is None or importlib.util.find_spec("shimmy") is None:
        return False
    import mujoco

    return int(mujoco.__version__.split(".")[0]) < 4


needs_dmc = pytest.mark.skipif(not _dmc_usable(), reason="needs the dmc extra: pip install 'dg-envs[dmc]' (mujoco<4)")
CHECKED = ("dg_envs/dmc-cartpole-swingup-v0", "dg_envs/dmc-cheetah-run-v0")  # 1-D and 6-D actions


def test_ids_are_registered_without_importing_dm_control():
    code = ("import sys, gymnasium as gym, dg_envs; from dg_envs.envs import DMC_IDS; "
            "assert all(i in gym.registry for i in DMC_IDS); print('dm_control' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == "False"
    assert len(DMC_IDS) == len(DMC_TASKS) == 6
    assert dmc_id("ball_in_cup", "catch") in DMC_IDS
    assert gym.spec("dg_envs/dmc-walker-walk-v0").kwargs == {"domain": "walker", "task": "walk"}


def test_missing_extra_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dm_control", None)  # as if not installed
    with pytest.raises(ImportError, match=r"dg-envs\[dmc\]"):
        gym.make("dg_envs/dmc-cheetah-run-v0")


@needs_dmc
def test_unknown_task_is_a_value_error():
    with pytest.raises(ValueError, match="not a DeepMind Control Suite task"):
        make_dmc("cheetah", "fly")


@needs_dmc
@pytest.mark.parametrize("env_id", DMC_IDS)
def test_spaces_and_one_episode(env_id):
    """A flat float32 Box observation, Shimmy's [-1, 1] Box actions, 1,000-step episodes truncated."""
    env = gym.make(env_id)
    assert env.observation_space.dtype == np.float32 and len(env.observation_space.shape) == 1
    assert isinstance(env.action_space, gym.spaces.Box)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    zero = np.zeros(env.action_space.shape, env.action_space.dtype)
    for steps in range(1, 1001):
        obs, reward, terminated, truncated, _ = env.step(zero)
        assert 0.0 <= reward <= 1.0
        if terminated or truncated:
            break
    assert (steps, terminated, truncated) == (1000, False, True)


def _rollout(env, seed, n=50):
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for action in np.random.default_rng(0).uniform(-1, 1, (n, *env.action_space.shape)):
        obs, reward, *_ = env.step(action.astype(env.action_space.dtype))
        trace += [obs, np.array([reward])]
    return trace


@needs_dmc
@pytest.mark.parametrize("env_id", CHECKED)
def test_seeded_determinism_and_rebuild_from_spec(env_id):
    env = gym.make(env_id)
    first = _rollout(env, seed=3)
    for other in (gym.make(env_id), gym.make(env.spec)):  # the spec rebuilds the same env
        np.testing.assert_array_equal(np.concatenate(first), np.concatenate(_rollout(other, seed=3)))
    assert not np.array_equal(first[0], _rollout(gym.make(env_id), seed=4)[0])


def _frictions(env_id: str) -> dict[str, dict]:
    """Every friction, as :func:`~dg_envs.wrappers.apply_frictions` keywords (landmine: full torque)."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    from dg_envs.wrappers import PolicyOracle

    env = gym.make(env_id)
    expert = ActorCriticPolicy(env.observation_space, env.action_space, lr_schedule=lambda _: 1e-3, net_arch=[8])
    bug = {"p": 0.5, "landmine": env.action_space.high}
    settings = {
        "stale": {"stale": 2},
        "mismatch": {"mismatch": 0.5},
        "bug": {"bug": bug},
        "random_answer": {"random_answer": 0.5},
        "reward_corruption": {"reward_corruption": {"p": 0.5, "mode": "coin"}},
        "discovery": {"discovery": {"p": 0.5, "oracle": PolicyOracle(expert)}},
    }
    settings["all"] = {k: v for s in settings.values() for k, v in s.items()}
    return settings


def _warnings(check, env) -> set[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check(env)
    return {str(w.message) for w in caught if "different from the unwrapped" not in str(w.message)}


@needs_dmc
@pytest.mark.parametrize("env_id", CHECKED)
def test_check_env_clean_and_with_every_friction(env_id):
    """Gymnasium's and SB3's checkers pass, with no warning beyond the clean env's own."""
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from dg_envs.wrappers import apply_frictions, push_policy_snapshot
    from dg_envs.wrappers.actors import SB3PolicyActor
    from stable_baselines3.common.policies import ActorCriticPolicy

    def gym_check(env):
        check_env(env, skip_render_check=True, skip_close_check=True)

    def sb3_check(env):
        sb3_check_env(env, warn=True, skip_render_check=True)

    clean = gym.make(env_id)
    baseline = {check: _warnings(check, gym.make(env_id)) for check in (gym_check, sb3_check)}
    gym_check(clean.unwrapped)
    actor = SB3PolicyActor(ActorCriticPolicy(clean.observation_space, clean.action_space, lambda _: 1e-3, net_arch=[8]))
    for name, kwargs in _frictions(env_id).items():
        for check in (gym_check, sb3_check):
            env = apply_frictions(gym.make(env_id), **kwargs)
            push_policy_snapshot(env, actor)  # stale / mismatched actors act with a policy
            assert _warnings(check, env) <= baseline[check], (name, check.__name__)


#: The algorithms for Box actions (the reference methods are for discrete answers).
BOX_ALGORITHMS = ("DGPPO", "KondoPPO", "DGA2C", "KondoA2C", "PG", "IWPG", "PPO", "A2C")


@needs_dmc
@pytest.mark.parametrize("name, extra", [(name, {}) for name in BOX_ALGORITHMS]
                         + [("DGPPO", {"box_gate": g}) for g in ("mean_only", "scale_leave_one_out", "per_dimension",
                                                                 "clipped")])
def test_every_algorithm_trains_under_every_friction_on_a_suite_task(name, extra):
    """64 steps on cheetah-run (6-D actions) with all frictions at once: finite parameters, some actions relabelled."""
    import torch as th

    from dg_envs.algos import get_algorithm
    from dg_envs.wrappers import SnapshotCallback, apply_frictions
    from dg_envs.experiments.training import pushes_own_snapshots

    algo = get_algorithm(name)
    env = apply_frictions(gym.make("dg_envs/dmc-cheetah-run-v0"), **_frictions("dg_envs/dmc-cheetah-run-v0")["all"])
    ppo = "PPO" in name
    model = algo("MlpPolicy", env, n_steps=32, seed=0, device="cpu", policy_kwargs={"net_arch": [16]},
                 **({"batch_size": 16, "n_epochs": 1} if ppo else {}), **extra)
    model.learn(64, callback=None if pushes_own_snapshots(algo) else SnapshotCallback())
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert model.relabelled_fraction > 0


@needs_dmc
def test_dgppo_with_the_buggy_actor_trains_on_executed_actions():
    """A few hundred steps of DGPPO on cartpole-swingup, 30% of actions the full-torque landmine:
    the rollout buffer holds the landmine where it ran (the executed action), and only there."""
    from dg_envs.algos import DGPPO
    from dg_envs.wrappers import apply_frictions

    env = apply_frictions(gym.make("dg_envs/dmc-cartpole-swingup-v0"), bug={"p": 0.3, "landmine": np.ones(1, np.float32)},
                          reward_corruption={"p": 0.1, "mode": "coin"})
    model = DGPPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(384)
    actions = model.rollout_buffer.actions.reshape(-1)
    landmine_rows = float(np.mean(actions == 1.0))
    assert model.relabelled_fraction == pytest.approx(landmine_rows)  # relabelled exactly where it ran
    assert 0.15 < landmine_rows < 0.45  # ~0.3 of 128
    assert model.logger.name_to_value["train/std"] > 0
