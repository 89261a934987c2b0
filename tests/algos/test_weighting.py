"""The shared weighting machinery: surprisal choices, constructor validation, exactness vs SB3."""

import math

import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO

import os, sys

sys.path.insert(0, os.path.dirname(__file__))
from _algos_test_utils import SMALL, assert_same_params
from dg_envs.algos import DGA2C, DGPPO, IWPG, PG, KondoA2C, KondoPPO
from dg_envs.algos.gates import dg_gate, weighted_pg_loss
from dg_envs.algos.weighting import ScaleGradient, surprisal


def test_scale_gradient_identity_forward_scaled_backward():
    x = th.tensor([1.0, 2.0], requires_grad=True)
    y = ScaleGradient.apply(x, th.tensor([0.5, 3.0]))
    assert th.equal(y, x.detach())
    y.sum().backward()
    assert th.equal(x.grad, th.tensor([0.5, 3.0]))


def test_surprisal_choices_hand_values():
    lp, ent = th.tensor([2.0, -12.0]), th.tensor([0.5, 0.5])
    assert th.equal(surprisal(lp, ent, "raw"), th.tensor([-2.0, 12.0]))
    assert th.equal(surprisal(lp, ent, "clipped"), th.tensor([-2.0, 10.0]))
    assert th.equal(surprisal(lp, ent, "per_dim", action_dim=2), th.tensor([-1.0, 6.0]))
    assert th.equal(surprisal(lp, ent, "entropy_centered"), th.tensor([-2.5, 11.5]))
    assert th.equal(surprisal(lp, None, "entropy_centered"), th.tensor([-7.0, 7.0]))  # batch-mean fallback


@pytest.mark.parametrize(
    "cls, kwargs, name",
    [
        (DGA2C, {"eta": 0.0}, "eta"),
        (DGPPO, {"eta": -1.0}, "eta"),
        (DGPPO, {"eta": math.nan}, "eta"),
        (DGA2C, {"surprisal": "bogus"}, "surprisal"),
        (KondoA2C, {"keep_fraction": 0.0}, "keep_fraction"),
        (KondoPPO, {"keep_fraction": 1.5}, "keep_fraction"),
        (KondoA2C, {"price": math.inf}, "price"),
        (KondoPPO, {"kondo_eta": -0.1}, "kondo_eta"),
        (KondoPPO, {"screen": "bogus"}, "screen"),
        (IWPG, {"max_weight": 0.0}, "max_weight"),
        (DGA2C, {"eta": True}, "eta"),
        (DGA2C, {"eta": "1"}, "eta"),
        (KondoA2C, {"keep_fraction": np.float32(np.nan)}, "keep_fraction"),
        (KondoPPO, {"kondo_eta": math.inf}, "kondo_eta"),
        (KondoPPO, {"value_samples": "all"}, "value_samples"),
    ],
)
def test_constructor_rejects_invalid(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls("MlpPolicy", "CartPole-v1", **kwargs)


def test_dga2c_with_unit_gate_equals_a2c(force_unit_gate):
    ours = DGA2C("MlpPolicy", "CartPole-v1", n_steps=8, **SMALL).learn(256)
    ref = A2C("MlpPolicy", "CartPole-v1", n_steps=8, **SMALL).learn(256)
    assert_same_params(ours, ref)


def test_dgppo_with_unit_gate_equals_ppo(force_unit_gate):
    kw = dict(n_steps=32, batch_size=16, n_epochs=2, **SMALL)
    ours = DGPPO("MlpPolicy", "CartPole-v1", **kw).learn(256)
    ref = PPO("MlpPolicy", "CartPole-v1", **kw).learn(256)
    assert_same_params(ours, ref)


def test_the_gate_changes_the_update():
    ours = DGA2C("MlpPolicy", "CartPole-v1", n_steps=8, **SMALL).learn(64)
    ref = A2C("MlpPolicy", "CartPole-v1", n_steps=8, **SMALL).learn(64)
    with pytest.raises(AssertionError):
        assert_same_params(ours, ref)


def test_kondo_keep_all_equals_dg():
    ours = KondoA2C("MlpPolicy", "CartPole-v1", keep_fraction=1.0, n_steps=8, **SMALL).learn(256)
    ref = DGA2C("MlpPolicy", "CartPole-v1", n_steps=8, **SMALL).learn(256)
    assert_same_params(ours, ref)
    kw = dict(n_steps=32, batch_size=16, n_epochs=2, **SMALL)
    ours = KondoPPO("MlpPolicy", "CartPole-v1", keep_fraction=1.0, **kw).learn(128)
    ref = DGPPO("MlpPolicy", "CartPole-v1", **kw).learn(128)
    assert_same_params(ours, ref, atol=1e-6)


def test_iwpg_without_friction_equals_pg():
    ours = IWPG("MlpPolicy", "CartPole-v1", n_steps=8, **SMALL).learn(256)
    ref = PG("MlpPolicy", "CartPole-v1", n_steps=8, **SMALL).learn(256)
    assert_same_params(ours, ref, atol=1e-6)


def test_pg_is_a2c_with_monte_carlo_advantages():
    ours = PG("MlpPolicy", "CartPole-v1", n_steps=8, **SMALL).learn(256)
    ref = A2C("MlpPolicy", "CartPole-v1", n_steps=8, gae_lambda=1.0, **SMALL).learn(256)
    assert_same_params(ours, ref)


@pytest.mark.parametrize("value_samples", ["kept", "uniform"])
def test_kondo_trains_on_kept_samples_only(value_samples):
    model = KondoA2C("MlpPolicy", "CartPole-v1", keep_fraction=0.25, value_samples=value_samples, n_steps=16, **SMALL)
    seen = []
    orig = model.policy.evaluate_actions

    def spy(obs, actions):
        seen.append(len(actions))
        return orig(obs, actions)

    model.policy.evaluate_actions = spy
    model.learn(64)
    # cached screening: no screening forward; the differentiable forward sees the 4 kept of 16
    # (plus, for "uniform", a uniform value sample of 4, overlapping the kept ones or not).
    assert seen and (set(seen) == {4} if value_samples == "kept" else all(4 <= n <= 8 for n in seen))
    logged = model.logger.name_to_value
    assert logged["train/kondo_kept_fraction"] == 0.25
    assert logged["train/kondo_backward_samples"] == seen[-1]


@pytest.mark.parametrize("cls", [DGA2C, DGPPO, KondoA2C, KondoPPO, PG, IWPG], ids=lambda c: c.__name__)
def test_one_gated_evaluate_actions_per_minibatch(cls):
    ppo = issubclass(cls, PPO)
    kwargs = dict(n_steps=32, **(dict(batch_size=8, n_epochs=2) if ppo else {}), **SMALL)
    if cls in (KondoA2C, KondoPPO):
        kwargs["keep_fraction"] = 0.25
    model = cls("MlpPolicy", "CartPole-v1", **kwargs)
    drawn = []
    buffer_get = type(model.rollout_buffer).get

    def counting_get(self, batch_size=None):  # the buffer's own minibatches, counted independently
        for batch in buffer_get(self, batch_size):
            drawn.append(len(batch.advantages))
            yield batch

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(model.rollout_buffer), "get", counting_get)
        model.learn(32)  # one rollout, one train()
    expected = 2 * 32 // 8 if ppo else 1
    assert len(drawn) == expected
    assert model._pairing.prepared == model._pairing.taken == expected


def _train_evaluating(times):
    """A stand-in for a future SB3 ``train()`` that evaluates each minibatch ``times`` times."""

    def train(self):
        for batch in self.rollout_buffer.get(self.batch_size):
            for _ in range(times):
                self.policy.evaluate_actions(batch.observations, batch.actions.long().flatten())

    return train


@pytest.mark.parametrize("times, message", [(2, "no prepared minibatch waiting"), (0, "never passed to evaluate_actions")])
def test_unpaired_evaluate_actions_raises(times, message):
    model = DGPPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=8, n_epochs=1, **SMALL)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PPO, "train", _train_evaluating(times))
        with pytest.raises(RuntimeError, match=message):
            model.learn(32)
    assert "evaluate_actions" not in model.policy.__dict__  # the wrapper is removed even on error


@pytest.mark.parametrize(
    "cls, kwargs",
    [(DGA2C, {"eta": np.float32(0.5)}), (KondoA2C, {"keep_fraction": np.float32(0.25)}), (KondoPPO, {"price": np.float64(0.1)}),
     (KondoPPO, {"kondo_eta": np.float32(0.5)}), (IWPG, {"max_weight": np.int64(10)})],
)
def test_constructor_accepts_numpy_scalars(cls, kwargs):
    model = cls("MlpPolicy", "CartPole-v1", **kwargs)
    name, value = next(iter(kwargs.items()))
    assert getattr(model, name) == float(value) and type(getattr(model, name)) is float


def test_tiny_eta_trains_without_nan():
    # eta = 1e-300 underflows in float32; the gate must stay the hard gate, never NaN.
    model = DGA2C("MlpPolicy", "CartPole-v1", eta=1e-300, n_steps=8, **SMALL).learn(64)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert 0.0 <= model.logger.name_to_value["train/gate_mean"] <= 1.0


def test_dga2c_gradient_equals_the_reference_weighted_pg_loss():
    """The ScaleGradient path inside SB3's A2C loss has the gradient of ``weighted_pg_loss``."""
    import copy

    model = DGA2C("MlpPolicy", "CartPole-v1", n_steps=16, vf_coef=0.0, ent_coef=0.0, max_grad_norm=1e9, **SMALL)
    captured = {}
    step = model.policy.optimizer.step

    def spy_step(*args, **kwargs):  # the gradient SB3's backward left, before the update
        captured["grads"] = [p.grad.clone() for p in model.policy.parameters()]
        captured["params"] = copy.deepcopy(model.policy.state_dict())
        return step(*args, **kwargs)

    model.policy.optimizer.step = spy_step
    model.learn(16)
    buffer, policy = model.rollout_buffer, model.policy  # the buffer is flat after train()
    policy.load_state_dict(captured["params"])  # the parameters the gradient was taken at
    policy.optimizer.zero_grad()
    obs, actions = th.as_tensor(buffer.observations), th.as_tensor(buffer.actions).long().flatten()
    adv = th.as_tensor(buffer.advantages).flatten()
    _, log_prob, _ = policy.evaluate_actions(obs, actions)
    weighted_pg_loss(log_prob, adv, dg_gate(adv, log_prob.detach())).backward()
    reference = [p.grad if p.grad is not None else th.zeros_like(p) for p in policy.parameters()]
    diff = max(float((a - b).abs().max()) for a, b in zip(captured["grads"], reference))
    assert diff <= 1e-6, diff
    assert any(float(g.abs().max()) > 1e-3 for g in reference)  # a real gradient, not zeros on both sides
