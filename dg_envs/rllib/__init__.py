"""DG and Kondo on Ray RLlib (new API stack, torch): ``pip install "dg-envs[rllib]"``.

* :class:`DGPPOConfig`, :class:`DGAPPOConfig` (algorithms :class:`DGPPO`, :class:`DGAPPO`) — RLlib's PPO / APPO configs whose
  ``.training()`` also takes ``eta``, ``keep_fraction`` / ``price`` (Kondo) and, for APPO,
  ``vtrace_correction``; their learners are :class:`~dg_envs.rllib.learners.DGPPOTorchLearner`
  and :class:`~dg_envs.rllib.learners.DGAPPOTorchLearner`, which log the policy lag of every
  trained sample (RLlib's weights sequence numbers) and the gate statistics.
  :class:`~dg_envs.rllib.learners.APPOLagTorchLearner` is RLlib's APPO loss with the same lag
  metrics (``DGAPPOConfig().training(learner_class=APPOLagTorchLearner)``): the baseline of
  ``dg-envs experiment distributed``.
* :class:`ExecutedActionCallback` — the executed-action protocol: episodes leave the env runners
  with the action that ran and its reported log-prob (added by the DG configs; add it to any
  other RLlib config with ``config.callbacks(ExecutedActionCallback)``).
* :class:`SampleAccountingCallback` — under RLlib's fault tolerance, adds
  ``result["sample_accounting"]`` to every training result: env runner restarts, the env steps
  sampled and trained over the run, and ``lost_env_steps_at_most``, a bound on the env steps
  failed runners simulated but never delivered (``config.callbacks(SampleAccountingCallback)``;
  it composes with the other callbacks).
* :func:`register_env` / :func:`make_env_creator` — our env ids with env-level frictions, built
  inside the env runners.

Example (not run here: it starts Ray)::

    from dg_envs.rllib import DGAPPOConfig, register_env

    config = (
        DGAPPOConfig()
        .environment(register_env("bandit-bug", "dg_envs/ContextualBandit-v0", frictions={"bug": 0.1}))
        .env_runners(num_env_runners=2)
        .training(eta=1.0, vtrace_correction=False)
    )
    algo = config.build_algo()
    result = algo.train()
    result["learners"]["default_policy"]["policy_lag_mean"]
"""

import importlib.util

__all__ = [
    "APPOLagTorchLearner", "DGAPPO", "DGAPPOConfig", "DGAPPOTorchLearner", "DGPPO", "DGPPOConfig", "DGPPOTorchLearner", "DelightOptions",
    "ExecutedActionCallback", "METRICS", "SampleAccountingCallback", "make_env_creator", "register_env",
]

if importlib.util.find_spec("ray") is not None:
    from dg_envs.rllib.accounting import SampleAccountingCallback
    from dg_envs.rllib.config import DGAPPO, DGPPO, DGAPPOConfig, DGPPOConfig
    from dg_envs.rllib.learners import METRICS, APPOLagTorchLearner, DGAPPOTorchLearner, DGPPOTorchLearner
    from dg_envs.rllib.options import DelightOptions
    from dg_envs.rllib.protocol import ExecutedActionCallback, make_env_creator, register_env
else:  # importable without the extra (so tools can walk the package); using it says what is missing

    def __getattr__(name: str):
        if name in __all__:
            raise ImportError(f'dg_envs.rllib.{name} needs Ray RLlib: pip install "dg-envs[rllib]"')
        raise AttributeError(f"module 'dg_envs.rllib' has no attribute {name!r}")
