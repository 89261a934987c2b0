"""The executed-action protocol inside RLlib: our env-level frictions run in env runners, and
the learner trains on the action that ran with the log-prob the actor reported."""

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

import gymnasium as gym  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402

from dg_envs.rllib import DGPPOConfig, register_env  # noqa: E402
from dg_envs.rllib.learners import DGPPOTorchLearner  # noqa: E402
from dg_envs.rllib.protocol import RELABELLED_FRACTION, ExecutedActionCallback, make_env_creator  # noqa: E402

LANDMINE, P_BUG = 7, 0.5


class Recording:
    """Learner mixin that keeps the actions, behaviour log-probs and loss mask of every batch its loss saw."""

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        self.recorded = getattr(self, "recorded", [])
        self.recorded.append(tuple(batch[key].numpy().copy()
                                   for key in (Columns.ACTIONS, Columns.ACTION_LOGP, Columns.LOSS_MASK)))
        return super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)


class RecordingDGPPO(Recording, DGPPOTorchLearner):
    pass


class RecordingPPO(Recording, PPOTorchLearner):
    pass


def _recorded(config_class, learner_class, env_name, num_env_runners):
    """One training iteration; the learner's recorded (actions, log-probs) over valid rows, and the results."""
    algo = (
        config_class()
        .environment(env_name)
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=2, rollout_fragment_length=64)
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=128, minibatch_size=128, num_epochs=1, learner_class=learner_class)
        .debugging(seed=0)
        .build_algo()
    )
    try:
        result = algo.train()
        actions, logp, mask = map(np.concatenate, zip(*algo.learner_group._learner.recorded))
    finally:
        algo.stop()
    return actions[mask], logp[mask], result


def test_friction_stack_runs_in_a_plain_env_creator():
    env = make_env_creator("dg_envs/ContextualBandit-v0", frictions={"bug": {"p": 1.0, "landmine": LANDMINE},
                                                                      "reward_corruption": 0.5, "discovery": 0.1,
                                                                      "random_answer": 0.1})({})
    env.reset(seed=0)
    info = env.step(0)[4]
    assert "executed_action" in info and info["frictions"]


def test_landmine_reaches_the_learner_with_its_reported_log_prob(local_ray):
    """BuggyActor(p=0.5, landmine=7, reported log-prob 0.0) on a 10-arm contextual bandit, in a
    remote env runner. The learner's batch must hold the landmine where the bug fired, with log-prob
    exactly 0.0 (a 10-arm policy's own log-probs are near log(1/10)), on about half the rows; a
    vanilla PPO config without the callback trains on the policy's actions instead (no 0.0 log-prob)."""
    env_name = register_env("dg-test-bandit-landmine", "dg_envs/ContextualBandit-v0",
                            frictions={"bug": {"p": P_BUG, "landmine": LANDMINE}})
    actions, logp, result = _recorded(DGPPOConfig, RecordingDGPPO, env_name, num_env_runners=1)
    reported = logp == 0.0
    assert reported.any() and np.all(actions[reported] == LANDMINE)
    assert 0.35 < reported.mean() < 0.65, reported.mean()  # p = 0.5 over >= 128 steps
    assert np.all(logp[~reported] < -0.5)  # the policy's own samples keep their own log-probs
    assert 0.35 < result["env_runners"][RELABELLED_FRACTION] < 0.65
    assert result["learners"]["default_policy"]["policy_lag_max"] == 0  # synchronous PPO: on-policy

    # Without the callback, RLlib keeps the module's action and log-prob.
    _, logp, _ = _recorded(PPOConfig, RecordingPPO, env_name, num_env_runners=0)
    assert not np.any(logp == 0.0)


def test_callback_relabels_box_actions_into_the_modules_space():
    """With RLlib's normalize_actions, a Box action that ran is stored in the module's [-1, 1] space."""
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    episode = SingleAgentEpisode(observation_space=gym.spaces.Box(0, 1, (1,)), action_space=space)
    episode.add_env_reset(observation=np.zeros(1, np.float32), infos={})
    episode.add_env_step(observation=np.zeros(1, np.float32), action=np.array([0.3], np.float32), reward=0.0,
                         infos={"executed_action": np.array([1.0], np.float32), "behavior_log_prob": -0.25},
                         extra_model_outputs={Columns.ACTION_LOGP: np.float32(-1.0)})

    class Runner:
        class config:
            normalize_actions = True

    ExecutedActionCallback().on_episode_step(episode=episode, env_runner=Runner())
    assert episode.get_actions(-1) == pytest.approx([0.5])
    assert episode.get_extra_model_outputs(Columns.ACTION_LOGP, -1) == pytest.approx(-0.25)


@pytest.mark.parametrize("vectorize_mode", ["sync", "vector_entry_point"], ids=["per-env", "vector"])
def test_env_runner_episodes_hold_the_executed_action(local_ray, vectorize_mode):
    """Both executions of the frictions run in an env runner: Gymnasium's SyncVectorEnv of per-env
    wrappers, and (vectorize mode "vector_entry_point") our native vector env with the batched
    wrappers. Step by step, the episode holds the executed action and reported log-prob where the
    step's info says a wrapper replaced the action, and the module's own elsewhere."""
    env_name = register_env(f"dg-test-bandit-{vectorize_mode}", "dg_envs/ContextualBandit-v0",
                            frictions={"bug": {"p": P_BUG, "landmine": LANDMINE}, "reward_corruption": 0.2})
    algo = (
        DGPPOConfig()
        .environment(env_name)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=4, gym_env_vectorize_mode=vectorize_mode)
        .learners(num_learners=0)
        .debugging(seed=0)
        .build_algo()
    )
    try:
        episodes = algo.env_runner.sample(num_timesteps=128, random_actions=False)
    finally:
        algo.stop()
    actions = np.concatenate([episode.get_actions() for episode in episodes])
    logp = np.concatenate([episode.get_extra_model_outputs(Columns.ACTION_LOGP) for episode in episodes])
    infos = [info for episode in episodes for info in episode.get_infos()[1:]]  # [0]: the reset's
    replaced = np.array(["executed_action" in info for info in infos])
    assert len(actions) == len(infos) >= 128
    assert 0.3 < replaced.mean() < 0.7
    assert np.all(actions[replaced] == LANDMINE) and np.all(logp[replaced] == 0.0)
    assert np.all(logp[~replaced] < -0.5)
