"""The DG learners' losses against hand-written oracles on fixed batches (no Ray cluster needed)."""

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402
from ray.rllib.algorithms.appo import APPOConfig  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.evaluation.postprocessing import Postprocessing  # noqa: E402

from dg_envs.rllib import DGAPPOConfig, DGPPOConfig  # noqa: E402
from dg_envs.rllib.learners import (  # noqa: E402
    KONDO_BACKWARD_SAMPLES, KONDO_KEPT_FRACTION, APPOLagTorchLearner, _screening_logits,
)

SPACES = {"default_policy": (gym.spaces.Box(0, 1, (4,), np.float32), gym.spaces.Discrete(3))}
N, ETA = 16, 0.7


def _batch(seed, terminal=True, ppo=False):
    g = torch.Generator().manual_seed(seed)
    batch = {
        Columns.OBS: torch.rand(N, 4, generator=g),
        Columns.ACTIONS: torch.randint(0, 3, (N,), generator=g),
        Columns.ACTION_LOGP: -2 * torch.rand(N, generator=g),
    }
    if ppo:
        batch[Columns.ACTION_DIST_INPUTS] = torch.randn(N, 3, generator=g)
        batch[Postprocessing.ADVANTAGES] = 2 * torch.randn(N, generator=g)
        batch[Postprocessing.VALUE_TARGETS] = torch.randn(N, generator=g)
    else:
        batch[Columns.REWARDS] = torch.randn(N, generator=g)
        batch[Columns.TERMINATEDS] = torch.full((N,), terminal)
        batch[Columns.LOSS_MASK] = torch.ones(N, dtype=torch.bool)
    return batch


def _policy_params(module):
    return [p for name, p in module.named_parameters() if name.startswith(("pi.", "encoder.actor_encoder."))]


def _learner_grads(learner, batch, params=None):
    module = learner.module["default_policy"]
    loss = learner.compute_loss_for_module(module_id="default_policy", config=learner.config, batch=batch,
                                           fwd_out=module.forward_train(batch))
    params = _policy_params(module) if params is None else params
    return loss, torch.autograd.grad(loss, params)


def _logp(module, batch):
    logits = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    return torch.log_softmax(logits, -1).gather(1, batch[Columns.ACTIONS][:, None]).squeeze(1)


def _max_diff(grads_a, grads_b):
    return max(float((a - b).abs().max()) for a, b in zip(grads_a, grads_b))


def test_dg_ppo_policy_gradient_is_the_dg_weighted_clipped_surrogate():
    config = DGPPOConfig().training(eta=ETA, entropy_coeff=0.0, use_kl_loss=False).learners(num_learners=0)
    learner = config.build_learner(spaces=SPACES)
    batch = _batch(1, ppo=True)
    _, grads = _learner_grads(learner, batch)
    module = learner.module["default_policy"]
    logp, adv = _logp(module, batch), batch[Postprocessing.ADVANTAGES]
    w = torch.sigmoid(adv * -logp.detach() / ETA)  # the gate: current learner's surprisal
    ratio = torch.exp(logp - batch[Columns.ACTION_LOGP])
    clip = config.clip_param
    hand = -(w * torch.minimum(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip))).mean()
    expected = torch.autograd.grad(hand, _policy_params(module))
    assert _max_diff(grads, expected) <= 1e-6
    assert sum(float(g.abs().sum()) for g in grads) > 1.0  # a real gradient, not two zeros


def test_dg_appo_without_correction_is_dg_on_uncorrected_advantages():
    """One-step episodes (a bandit): V-trace with rho = c = 1 gives A = r - V(s); the policy
    term is -mean(w * A * log pi) with no ratio, whatever the behaviour log-probs."""
    config = (DGAPPOConfig().training(eta=ETA, vtrace_correction=False, entropy_coeff=0.0)
              .learners(num_learners=0).env_runners(rollout_fragment_length=4))
    learner = config.build_learner(spaces=SPACES)
    batch = _batch(2)
    _, grads = _learner_grads(learner, batch)
    module = learner.module["default_policy"]
    logp = _logp(module, batch)
    adv = batch[Columns.REWARDS] - module.compute_values(batch).detach()
    w = torch.sigmoid(adv * -logp.detach() / ETA)
    expected = torch.autograd.grad(-(w * adv * logp).mean(), _policy_params(module))
    assert _max_diff(grads, expected) <= 1e-6
    # The behaviour log-probs play no part.
    batch[Columns.ACTION_LOGP] = torch.zeros(N)
    assert _max_diff(_learner_grads(learner, batch)[1], expected) <= 1e-6


def test_dg_appo_with_the_gate_off_is_rllibs_appo_exactly():
    """The guard against drift: our APPO loss with the gate switched off (APPOLagTorchLearner, the
    distributed experiment's APPO baseline) is APPOTorchLearner's."""
    dg = (DGAPPOConfig().training(entropy_coeff=0.01, use_kl_loss=True, learner_class=APPOLagTorchLearner)
          .learners(num_learners=0).env_runners(rollout_fragment_length=4)).build_learner(spaces=SPACES)
    assert type(dg) is APPOLagTorchLearner and not dg._gated
    base = (APPOConfig().training(entropy_coeff=0.01, use_kl_loss=True).learners(num_learners=0)
            .env_runners(rollout_fragment_length=4)).build_learner(spaces=SPACES)
    base.module.set_state(dg.module.get_state())
    batch = _batch(3, terminal=False)
    losses, grads = [], []
    for learner in (dg, base):
        params = [p for p in learner.module["default_policy"].parameters() if p.requires_grad]
        loss, g = _learner_grads(learner, batch, params)
        losses.append(loss.item())
        grads.append(g)
    assert losses[0] == losses[1]
    assert _max_diff(*grads) == 0.0


def test_dg_appo_with_correction_gates_appos_surrogate():
    """One-step episodes: APPO's surrogate with V-trace's clipped rho, times the DG gate of the
    V-trace advantage (the target network starts equal to the policy)."""
    config = (DGAPPOConfig().training(eta=ETA, entropy_coeff=0.0).learners(num_learners=0)
              .env_runners(rollout_fragment_length=4))
    learner = config.build_learner(spaces=SPACES)
    batch = _batch(4)
    _, grads = _learner_grads(learner, batch)
    module = learner.module["default_policy"]
    logp, behaviour = _logp(module, batch), batch[Columns.ACTION_LOGP]
    old = logp.detach()  # the target network's log-prob
    rho = torch.exp(old - behaviour)
    adv = rho.clamp(max=config.vtrace_clip_pg_rho_threshold) * (batch[Columns.REWARDS] - module.compute_values(batch).detach())
    w = torch.sigmoid(adv * -logp.detach() / ETA)
    ratio = torch.clip(torch.exp(behaviour - old), 0.0, 2.0) * torch.exp(logp - behaviour)
    clip = config.clip_param
    hand = -(w * torch.minimum(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip))).mean()
    assert _max_diff(grads, torch.autograd.grad(hand, _policy_params(module))) <= 1e-6


def test_kondo_ppo_runs_the_differentiable_pass_on_the_selection_only():
    config = (DGPPOConfig().training(eta=ETA, keep_fraction=0.25, entropy_coeff=0.0, use_kl_loss=False)
              .learners(num_learners=0))
    learner = config.build_learner(spaces=SPACES)
    batch = {"default_policy": _batch(5, ppo=True)}
    selected = learner._select_for_backward(batch)["default_policy"]
    kept = selected["dg_kondo_policy_mask"]
    assert int(kept.sum()) == 4  # round(0.25 * 16)
    assert 4 <= len(kept) <= 8  # kept + a uniform critic sample of 4 (overlaps allowed)
    # The kept rows are the top 4 by delight under the current learner.
    module = learner.module["default_policy"]
    full = batch["default_policy"]
    with torch.no_grad():
        chi = full[Postprocessing.ADVANTAGES] * -_logp(module, full)
    top = sorted(torch.topk(chi, 4).values.tolist())
    # (approx: the same rows scored in a batch of another size can differ in the last bits)
    kept_chi = (selected[Postprocessing.ADVANTAGES] * -_logp(module, selected).detach())[kept]
    assert sorted(kept_chi.tolist()) == pytest.approx(top, rel=1e-5)
    # The screening runs the actor encoder only, and gives forward_train's logits exactly.
    with torch.no_grad():
        assert torch.equal(_screening_logits(module, full), module.forward_train(full)[Columns.ACTION_DIST_INPUTS])
    # Policy gradient: the gated surrogate of the kept rows only, averaged over the selected rows.
    _, grads = _learner_grads(learner, selected)
    logp, adv = _logp(module, selected), selected[Postprocessing.ADVANTAGES]
    w = torch.sigmoid(adv * -logp.detach() / ETA) * kept
    ratio = torch.exp(logp - selected[Columns.ACTION_LOGP])
    clip = config.clip_param
    hand = -(w * torch.minimum(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip))).mean()
    assert _max_diff(grads, torch.autograd.grad(hand, _policy_params(module))) <= 1e-6
    # One whole update: the counts reach the metrics.
    results = learner.update(batch=_multi_agent(full), timesteps={})
    stats = results["default_policy"]
    assert stats[KONDO_KEPT_FRACTION].peek() == pytest.approx(0.25)
    assert 4 <= stats[KONDO_BACKWARD_SAMPLES].peek() <= 8


def _multi_agent(batch):
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

    return MultiAgentBatch({"default_policy": SampleBatch({k: v.numpy() for k, v in batch.items()})}, env_steps=N)


def test_kondo_appo_masks_the_policy_term_of_the_screened_out_samples():
    """APPO's Kondo is masked (documented): every sample goes through the backward pass, and the
    policy term keeps the top keep_fraction by delight, each times its DG gate."""
    config = (DGAPPOConfig().training(eta=ETA, vtrace_correction=False, keep_fraction=0.25, entropy_coeff=0.0)
              .learners(num_learners=0).env_runners(rollout_fragment_length=4))
    learner = config.build_learner(spaces=SPACES)
    batch = _batch(6)
    _, grads = _learner_grads(learner, batch)
    module = learner.module["default_policy"]
    logp = _logp(module, batch)
    adv = batch[Columns.REWARDS] - module.compute_values(batch).detach()
    chi = adv * -logp.detach()
    keep = torch.zeros(N, dtype=torch.bool)
    keep[torch.topk(chi, 4).indices] = True
    w = torch.sigmoid(chi / ETA) * keep
    expected = torch.autograd.grad(-(w * adv * logp).mean(), _policy_params(module))
    assert _max_diff(grads, expected) <= 1e-6
