"""KondoMixin's ``weighting="reference"``: the reference's survivors (ties kept), weight 1, summed over all screened."""

import copy
import os
import sys

import pytest
import torch as th
from stable_baselines3.common.type_aliases import RolloutBufferSamples

sys.path.insert(0, os.path.dirname(__file__))
from _algos_test_utils import SMALL
from dg_envs.algos import KondoA2C, KondoPPO
from dg_envs.algos.losses import kondo_loss

# Eight samples, surprisal 1 each (old log-prob -1), so the delight is the advantage. With
# keep_fraction 0.25, k = 2: the 2nd largest delight is 2, held by samples 2, 3 and 6, so the
# reference keeps {0, 2, 3, 6} (four samples); ours keeps exactly two.
ADVANTAGES = th.tensor([3.0, 1.0, 2.0, 2.0, -1.0, 0.0, 2.0, 0.5])
KEPT = [0, 2, 3, 6]


def _minibatch():
    n = len(ADVANTAGES)
    return RolloutBufferSamples(
        observations=th.arange(n, dtype=th.float32)[:, None].repeat(1, 4), actions=th.zeros(n, 1),
        old_values=th.zeros(n), old_log_prob=-th.ones(n), advantages=ADVANTAGES.clone(), returns=th.zeros(n))


def _weights(model):
    """The prepared minibatch and its per-sample policy-gradient weights, through the hooks ``train()`` calls."""
    model._normalize_before_slicing = False  # set by train(); A2C does not normalise
    prepared = model._prepare_minibatch(_minibatch())
    adv = prepared.batch.advantages
    log_prob = prepared.batch.old_log_prob
    model._stats = {"gate_mean": []}
    return prepared, model._sample_weights(prepared, adv, log_prob, model._surprise(log_prob, None))


@pytest.mark.parametrize("gate", [{"keep_fraction": 0.25}, {"price": 1.5}], ids=["keep_fraction", "price"])
def test_reference_weights_kept_only_hand_values(gate):
    """value_samples="kept": the four survivors (ties kept), each weighted 1 * 4 selected / 8 screened."""
    model = KondoA2C("MlpPolicy", "CartPole-v1", screen="cached", value_samples="kept", weighting="reference",
                     **gate, **SMALL)
    prepared, w = _weights(model)
    assert prepared.screened == 8 and prepared.policy_mask is None
    assert th.equal(prepared.batch.advantages, th.tensor([3.0, 2.0, 2.0, 2.0]))
    assert th.equal(w, th.tensor([0.5, 0.5, 0.5, 0.5]))


def test_reference_weights_with_uniform_critic_sample():
    """value_samples="uniform": weight ``keep * n_selected / 8``; the critic sample carries no policy gradient."""
    model = KondoA2C("MlpPolicy", "CartPole-v1", screen="cached", keep_fraction=0.25, weighting="reference", **SMALL)
    th.manual_seed(3)
    prepared, w = _weights(model)
    n_selected = len(prepared.batch.advantages)
    assert 4 <= n_selected <= 8 and prepared.screened == 8
    kept_advantages = prepared.batch.advantages[prepared.policy_mask]
    assert th.equal(kept_advantages, th.tensor([3.0, 2.0, 2.0, 2.0]))
    assert th.equal(w, prepared.policy_mask.float() * (n_selected / 8))
    assert int(prepared.value_mask.sum()) == 4


def test_gate_weighting_keeps_exactly_k_with_sigmoid_weights():
    """Ours on the same minibatch: exactly k = 2 kept (topk breaks the tie), weight sigmoid(chi / eta)."""
    model = KondoA2C("MlpPolicy", "CartPole-v1", screen="cached", keep_fraction=0.25, value_samples="kept", **SMALL)
    prepared, w = _weights(model)
    assert len(prepared.batch.advantages) == 2 and prepared.batch.advantages[0] == 3.0
    assert prepared.batch.advantages[1] == 2.0 and model.weighting == "gate"
    assert th.allclose(w, th.sigmoid(prepared.batch.advantages))


@pytest.mark.parametrize("value_samples", ["uniform", "kept"])
def test_reference_a2c_gradient_equals_kondo_loss(value_samples):
    """With no value or entropy loss, SB3's A2C gradient under ``weighting="reference"`` is ``kondo_loss``'s."""
    model = KondoA2C("MlpPolicy", "CartPole-v1", keep_fraction=0.25, weighting="reference", value_samples=value_samples,
                     n_steps=16, vf_coef=0.0, ent_coef=0.0, max_grad_norm=1e9, **SMALL)
    captured = {}
    step = model.policy.optimizer.step

    def spy_step(*args, **kwargs):  # the gradient SB3's backward left, before the update
        captured["grads"] = [p.grad.clone() for p in model.policy.parameters()]
        captured["params"] = copy.deepcopy(model.policy.state_dict())
        return step(*args, **kwargs)

    model.policy.optimizer.step = spy_step
    model.learn(16)
    buffer, policy = model.rollout_buffer, model.policy  # one train(), one minibatch of all 16
    policy.load_state_dict(captured["params"])
    policy.optimizer.zero_grad()
    obs, actions = th.as_tensor(buffer.observations), th.as_tensor(buffer.actions).long().flatten()
    adv = th.as_tensor(buffer.advantages).flatten()
    _, log_prob, _ = policy.evaluate_actions(obs, actions)
    out = kondo_loss(log_prob, adv, keep_fraction=0.25)
    out.loss.backward()
    reference = [p.grad if p.grad is not None else th.zeros_like(p) for p in policy.parameters()]
    diff = max(float((a - b).abs().max()) for a, b in zip(captured["grads"], reference))
    assert diff <= 1e-6, diff
    assert float(out.stats["kondo_kept_fraction"]) == 0.25  # k = 4 of 16, no ties on CartPole
    assert any(float(g.abs().max()) > 1e-3 for g in reference)  # a real gradient, not zeros on both sides


@pytest.mark.parametrize("cls", [KondoA2C, KondoPPO], ids=lambda c: c.__name__)
def test_reference_weighting_trains(cls):
    kwargs = dict(n_steps=32, **(dict(batch_size=16, n_epochs=2) if cls is KondoPPO else {}), **SMALL)
    model = cls("MlpPolicy", "CartPole-v1", keep_fraction=0.25, weighting="reference", **kwargs).learn(64)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert "train/gate_mean" not in model.logger.name_to_value  # no DG gate under the reference's weights


@pytest.mark.parametrize(
    "kwargs, match",
    [({"weighting": "sigmoid"}, "weighting must be one of 'gate', 'reference'; got 'sigmoid'"),
     ({"weighting": None}, "weighting"),
     ({"weighting": "reference", "price": 0.0, "kondo_eta": 0.5}, "weighting='reference'.*kondo_eta must be 0")],
)
def test_bad_weighting_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KondoPPO("MlpPolicy", "CartPole-v1", **kwargs)


@pytest.mark.parametrize("cls", [KondoA2C, KondoPPO], ids=lambda c: c.__name__)
def test_weighting_survives_save_and_load(cls, tmp_path):
    model = cls("MlpPolicy", "CartPole-v1", keep_fraction=0.25, weighting="reference", **SMALL)
    model.save(tmp_path / "model.zip")
    loaded = cls.load(tmp_path / "model.zip", device="cpu")
    assert loaded.weighting == "reference" and loaded.keep_fraction == 0.25
