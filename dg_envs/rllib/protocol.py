"""The executed-action protocol inside RLlib: :class:`ExecutedActionCallback` and :func:`make_env_creator`.

A friction that replaced the learner's action reports it in ``info["executed_action"]`` and
``info["behavior_log_prob"]`` (:mod:`dg_envs.wrappers.protocol`). RLlib's env runner stores the
*module's* action and its log-prob in the episode, so without help every learner would train on
an action that never ran. :class:`ExecutedActionCallback` is an RLlib callback whose
``on_episode_step`` — called by the env runner right after each step is logged in the episode,
the final step included — rewrites that step's action and ``action_logp`` from the ``info``
where a wrapper replaced the action (nowhere else: a Box action is not swapped for its clipped
version). The episodes leave the env runner relabelled, so every learner connector, the GAE /
V-trace computations and the loss see the executed action with its reported behaviour log-prob,
for any RLlib algorithm. Metric (env runners): ``relabelled_fraction``, the fraction of steps
relabelled.

Box actions with ``normalize_actions=True`` (RLlib's default): the executed action, in the env's
bounds, is mapped back into the module's [-1, 1] space; the reported log-density is stored as
given (no change-of-variables correction).

:func:`make_env_creator` builds an env creator for ``tune.register_env``: our env id with the
env-level frictions, made inside the env runner's process (where ``import dg_envs`` registers
the ids); :func:`register_env` registers one under a name for ``config.environment(name)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.spaces.space_utils import normalize_action

from dg_envs.wrappers.protocol import BEHAVIOR_LOG_PROB, EXECUTED_ACTION

__all__ = ["ENV_LEVEL_FRICTIONS", "RELABELLED_FRACTION", "ExecutedActionCallback", "make_env_creator", "register_env"]

RELABELLED_FRACTION = "relabelled_fraction"
#: The frictions that need no learner policy (staleness inside RLlib is real: asynchronous sampling).
ENV_LEVEL_FRICTIONS = ("bug", "random_answer", "reward_corruption", "discovery")


class ExecutedActionCallback(RLlibCallback):
    """Relabels each episode step whose ``info`` holds an executed action: action and ``action_logp``.

    >>> from ray.rllib.algorithms.ppo import PPOConfig
    >>> config = PPOConfig().callbacks(ExecutedActionCallback)

    :class:`~dg_envs.rllib.DGPPOConfig` and :class:`~dg_envs.rllib.DGAPPOConfig` add it themselves.
    """

    def on_episode_step(self, *, episode: Any, env_runner: Any = None, metrics_logger: Any = None, **kwargs: Any) -> None:
        if not isinstance(episode, SingleAgentEpisode):
            raise TypeError(f"ExecutedActionCallback supports single-agent episodes, got {type(episode).__name__}")
        info = episode.get_infos(-1)
        replaced = EXECUTED_ACTION in info
        if replaced:
            action = np.asarray(info[EXECUTED_ACTION])
            space = episode.action_space
            config = getattr(env_runner, "config", None)
            if isinstance(space, gym.spaces.Box) and config is not None and config.normalize_actions:
                action = normalize_action(action, space)  # the module's [-1, 1] space
            stored = episode.get_actions(-1)
            episode.set_actions(new_data=action.astype(np.asarray(stored).dtype).reshape(np.shape(stored)),
                                at_indices=-1)
            episode.set_extra_model_outputs(key=Columns.ACTION_LOGP, new_data=np.float32(info[BEHAVIOR_LOG_PROB]),
                                            at_indices=-1)
        if metrics_logger is not None:
            metrics_logger.log_value(RELABELLED_FRACTION, float(replaced), reduce="mean")


def make_env_creator(env_id: str, *, frictions: dict[str, Any] | None = None, **env_kwargs: Any) -> Callable[[Any], gym.Env]:
    """An RLlib env creator: ``gym.make(env_id, **env_kwargs)`` wrapped in env-level frictions.

    ``frictions`` holds :func:`dg_envs.wrappers.apply_frictions` arguments, env-level ones only
    (:data:`ENV_LEVEL_FRICTIONS`); they are checked here, before any runner starts. The creator
    imports ``dg_envs`` itself (so the ids exist in the env runner's process) and adds the
    ``env_config`` RLlib passes (the ``EnvContext``) to ``env_kwargs``.

    >>> creator = make_env_creator("dg_envs/ContextualBandit-v0", frictions={"bug": 0.5}, n_contexts=4)
    >>> env = creator({})
    >>> type(env).__name__, env.unwrapped.n_contexts
    ('BuggyActor', 4)
    >>> make_env_creator("dg_envs/ContextualBandit-v0", frictions={"stale": 3})
    Traceback (most recent call last):
    ...
    ValueError: frictions for RLlib must be among 'bug', 'random_answer', 'reward_corruption', 'discovery' (staleness in RLlib comes from asynchronous sampling; a mismatched actor needs the learner's policy); got 'stale'
    """
    frictions = dict(frictions or {})
    for name in frictions:
        if name not in ENV_LEVEL_FRICTIONS:
            raise ValueError(
                f"frictions for RLlib must be among {', '.join(repr(f) for f in ENV_LEVEL_FRICTIONS)} (staleness in "
                f"RLlib comes from asynchronous sampling; a mismatched actor needs the learner's policy); got {name!r}")
    from dg_envs.wrappers.stack import REGISTRY

    for name, value in frictions.items():  # each friction's own checks, now rather than in a runner
        friction = REGISTRY[name]
        friction.spec(**(dict(value) if isinstance(value, dict) else {friction.first_argument: value}))

    def creator(env_config: Any) -> Any:
        import dg_envs  # noqa: F401  (registers the ids in this process)
        from dg_envs.wrappers import apply_frictions

        kwargs = {**env_kwargs, **dict(env_config or {})}
        num_envs = kwargs.pop("num_envs", None)  # RLlib's gym_env_vectorize_mode="vector_entry_point"
        if num_envs is None:
            return apply_frictions(gym.make(env_id, **kwargs), **frictions)
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
        return apply_frictions(envs, **frictions)  # the batched engine: our native vector env and wrappers

    return creator


def register_env(name: str, env_id: str, *, frictions: dict[str, Any] | None = None, **env_kwargs: Any) -> str:
    """Register :func:`make_env_creator`'s creator with Ray Tune under ``name``; returns ``name``.

    ``config.environment(register_env("bandit-bug", "dg_envs/ContextualBandit-v0", frictions={"bug": 0.1}))``.
    """
    from ray.tune.registry import register_env as tune_register_env

    tune_register_env(name, make_env_creator(env_id, frictions=frictions, **env_kwargs))
    return name
