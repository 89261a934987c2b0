"""The Box-action gate options of DG/Kondo (``box_gate``): hand values, the widening they address, exactness.

The lead of issue 14: with the entropy-centred surprisal ``l = 0.5 * sum_d (z_d**2 - 1)`` the
sample gate ``sigmoid(A * l / eta)`` grows with ``A * (z**2 - 1)``, the score of ``log sigma``,
so DG pushes ``log sigma`` up even when the advantage is noise. Each option is checked on a
1-D Gaussian with fixed mean and std and two samples, by hand.
"""

import copy
import math
import os
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution

sys.path.insert(0, os.path.dirname(__file__))
from _algos_test_utils import SMALL, assert_same_params
from dg_envs.algos import DGA2C, DGPPO, KondoA2C, KondoPPO
from dg_envs.algos.gates import dg_gate, weighted_pg_loss
from dg_envs.algos.weighting import BOX_GATES, box_gates, gated_gaussian_log_prob, surprisal
from dg_envs.callbacks import ActionStdCallback, action_std

ROUTED = ("mean_only", "scale_leave_one_out", "per_dimension")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ---------------------------------------------------------------- a 1-D Gaussian, two samples, by hand
# mu = 0, sigma = 1; actions a = (2, 0.5), so z = (2, 0.5); advantages A = (1, -1); eta = 1.
# Entropy-centred surprisal l = 0.5 * (z**2 - 1) = (1.5, -0.375): gates sigmoid(A * l) =
# (sigmoid(1.5), sigmoid(0.375)). Scores: d log pi / d mu = z / sigma = (2, 0.5),
# d log pi / d log sigma = z**2 - 1 = (3, -0.75).
A = th.tensor([1.0, -1.0])
ACTIONS = th.tensor([[2.0], [0.5]])
SAMPLE = [sigmoid(1.5), sigmoid(0.375)]
# The paper's clip of the log-density: log pi = -0.5 z**2 - 0.5 log(2 pi) = (-2.9189, -1.0439),
# inside [-10, 10], so l = -log pi and the gates are sigmoid(A * l).
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
CLIPPED = [sigmoid(2.0 + HALF_LOG_2PI), sigmoid(-(0.125 + HALF_LOG_2PI))]
EXPECTED = {  # (mean gates, scale gates) of the two samples
    "sample": (SAMPLE, SAMPLE),
    "clipped": (CLIPPED, CLIPPED),
    "mean_only": (SAMPLE, [0.5, 0.5]),
    "scale_leave_one_out": (SAMPLE, [0.5, 0.5]),  # one dimension: no other dimension to be surprised by
    "per_dimension": (SAMPLE, SAMPLE),  # one dimension: its own delight is the sample's
}


def _normal_1d(mu=None, log_std=None):
    mu = th.zeros(2, 1) if mu is None else mu
    log_std = th.zeros(1) if log_std is None else log_std
    return th.distributions.Normal(mu, th.ones_like(mu) * log_std.exp())


@pytest.mark.parametrize("box_gate", BOX_GATES)
def test_box_gates_hand_values_one_dimension(box_gate):
    dist = _normal_1d()
    mean, scale = box_gates(box_gate, A, dist.log_prob(ACTIONS), dist.entropy(), "entropy_centered")
    expected_mean, expected_scale = EXPECTED[box_gate]
    assert mean.shape == scale.shape == (2, 1)
    np.testing.assert_allclose(mean[:, 0].numpy(), expected_mean, rtol=1e-6)
    np.testing.assert_allclose(scale[:, 0].numpy(), expected_scale, rtol=1e-6)


@pytest.mark.parametrize("box_gate", BOX_GATES)
def test_gated_log_prob_gradient_hand_values(box_gate):
    """A2C's loss ``-mean(A * log pi)`` through the gated log-prob: each score times its own gate."""
    mu = th.zeros(2, 1, requires_grad=True)
    log_std = th.zeros(1, requires_grad=True)
    dist = _normal_1d(mu, log_std)
    gates = box_gates(box_gate, A, dist.log_prob(ACTIONS), dist.entropy(), "entropy_centered")
    log_prob = gated_gaussian_log_prob(dist, ACTIONS, *gates)
    assert th.equal(log_prob, dist.log_prob(ACTIONS).sum(-1))  # the forward value is untouched
    (-(A * log_prob).mean()).backward()
    gm, gs = EXPECTED[box_gate]
    # d loss / d mu_i = -A_i * g_mean_i * z_i / 2 ; d loss / d log sigma = -mean_i A_i * g_scale_i * (z_i**2 - 1)
    np.testing.assert_allclose(mu.grad[:, 0].numpy(), [-1 * gm[0] * 2 / 2, -(-1) * gm[1] * 0.5 / 2], rtol=1e-6)
    np.testing.assert_allclose(log_std.grad.numpy(), [-(1 * gs[0] * 3 + (-1) * gs[1] * (-0.75)) / 2], rtol=1e-6)


def test_box_gates_hand_values_two_dimensions():
    """Leave-one-out and per-dimension, raw surprisal: per-dimension log-densities (-1, -3)."""
    lp = th.tensor([[-1.0, -3.0], [-1.0, -3.0]])
    mean, scale = box_gates("scale_leave_one_out", A, lp, None, "raw")
    np.testing.assert_allclose(mean.numpy(), [[sigmoid(4)] * 2, [sigmoid(-4)] * 2], rtol=1e-6)  # l = 4
    # log sigma_0 sees the other dimension's surprisal 3, log sigma_1 sees 1
    np.testing.assert_allclose(scale.numpy(), [[sigmoid(3), sigmoid(1)], [sigmoid(-3), sigmoid(-1)]], rtol=1e-6)
    mean, scale = box_gates("per_dimension", A, lp, None, "raw")
    np.testing.assert_allclose(mean.numpy(), [[sigmoid(1), sigmoid(3)], [sigmoid(-1), sigmoid(-3)]], rtol=1e-6)
    assert th.equal(mean, scale)
    # entropy-centred, per dimension: l_d = -log pi_d - H_d
    ent = th.tensor([[0.5, 1.0], [0.5, 1.0]])
    mean, _ = box_gates("per_dimension", A, lp, ent, "entropy_centered")
    np.testing.assert_allclose(mean.numpy(), [[sigmoid(0.5), sigmoid(2.0)], [sigmoid(-0.5), sigmoid(-2.0)]], rtol=1e-6)


def test_box_gates_reject_bad_input():
    with pytest.raises(ValueError, match="box_gate"):
        box_gates("bogus", A, th.zeros(2, 1), None, "raw")
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        box_gates("mean_only", A, th.zeros(2), None, "raw")
    with pytest.raises(ValueError, match="entropy"):
        box_gates("mean_only", A, th.zeros(2, 2), th.zeros(2), "raw")


@pytest.mark.parametrize("d", [1, 6])
def test_the_sample_gate_widens_on_noise_and_the_scale_options_do_not(d):
    """With ``A`` independent of ``z`` (no signal), the expected gated log-sigma score
    ``E[g_scale * A * sum_d (z_d**2 - 1)]`` is 0 under PG. Measured (200k samples, seed 0):
    sample 0.16 (d=1) / 0.75 (d=6); per-dimension larger at d=6 (0.96); mean-only and
    leave-one-out 0 up to sampling noise (sd ~0.003 at d=1, ~0.008 at d=6)."""
    gen = th.Generator().manual_seed(0)
    n = 200_000
    adv, z = th.randn(n, generator=gen), th.randn(n, d, generator=gen)
    dist = th.distributions.Normal(th.zeros(n, d), th.ones(n, d))
    bias = {}
    for box_gate in BOX_GATES:
        _, scale = box_gates(box_gate, adv, dist.log_prob(z), dist.entropy(), "entropy_centered")
        bias[box_gate] = float((scale * adv[:, None] * (z**2 - 1)).sum(1).mean())
    assert bias["sample"] > (0.1 if d == 1 else 0.6), bias
    assert abs(bias["mean_only"]) < 0.03 and abs(bias["scale_leave_one_out"]) < 0.03, bias
    if d > 1:
        assert bias["per_dimension"] > bias["sample"], bias


# ---------------------------------------------------------------- inside the algorithms


class TinyBox(gym.Env):
    """Two-dimensional reach: reward ``-||a - obs||**2``, episodes of 8 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.obs = 0, self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.obs, {}

    def step(self, action):
        reward = -float(np.sum((np.clip(action, -1, 1) - self.obs) ** 2))
        self.t += 1
        self.obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.obs, reward, False, self.t >= 8, {}


def _grads_at_first_update(model):
    """The gradient SB3's backward left at the first optimizer step, and the parameters it was taken at."""
    captured = {}
    step = model.policy.optimizer.step

    def spy_step(*args, **kwargs):
        if not captured:
            captured["grads"] = [p.grad.clone() if p.grad is not None else th.zeros_like(p) for p in model.policy.parameters()]
            captured["params"] = copy.deepcopy(model.policy.state_dict())
        return step(*args, **kwargs)

    model.policy.optimizer.step = spy_step
    return captured


@pytest.mark.parametrize("box_gate", BOX_GATES)
def test_dga2c_gradient_equals_the_split_reference(box_gate):
    """A2C's policy gradient with ``box_gate`` is, per sample and dimension, the mean's score times
    the mean's gate plus the log-std's score times the scale's gate (an independent formula:
    two log-densities, each with the other parameter detached)."""
    model = DGA2C("MlpPolicy", TinyBox(), n_steps=16, vf_coef=0.0, ent_coef=0.0, max_grad_norm=1e9, box_gate=box_gate,
                  **SMALL)
    captured = _grads_at_first_update(model)
    model.learn(16)
    buffer, policy = model.rollout_buffer, model.policy
    policy.load_state_dict(captured["params"])
    policy.optimizer.zero_grad()
    obs, actions = th.as_tensor(buffer.observations), th.as_tensor(buffer.actions)
    adv = th.as_tensor(buffer.advantages).flatten()
    dist = policy.get_distribution(obs).distribution
    mu, sigma = dist.loc, dist.scale
    kind = "clipped" if box_gate == "clipped" else "entropy_centered"
    mean_gates, scale_gates = box_gates(box_gate, adv, dist.log_prob(actions), dist.entropy(), kind)
    mean_part = th.distributions.Normal(mu, sigma.detach()).log_prob(actions)
    scale_part = th.distributions.Normal(mu.detach(), sigma).log_prob(actions)
    (-(adv[:, None] * (mean_gates * mean_part + scale_gates * scale_part)).sum(1).mean()).backward()
    reference = [p.grad if p.grad is not None else th.zeros_like(p) for p in policy.parameters()]
    diff = max(float((a - b).abs().max()) for a, b in zip(captured["grads"], reference))
    assert diff <= 1e-5, diff
    assert float(policy.log_std.grad.abs().max()) > 1e-3  # a real scale gradient on both sides


def test_default_box_gate_is_the_sample_gate_of_weighted_pg_loss():
    """The default (``"sample"``) on a Box policy: the gradient of ``weighted_pg_loss`` with the DG gate
    on the entropy-centred surprisal, one gate per sample, as before the option existed."""
    model = DGA2C("MlpPolicy", TinyBox(), n_steps=16, vf_coef=0.0, ent_coef=0.0, max_grad_norm=1e9, **SMALL)
    assert model.box_gate == "sample"
    captured = _grads_at_first_update(model)
    model.learn(16)
    buffer, policy = model.rollout_buffer, model.policy
    policy.load_state_dict(captured["params"])
    policy.optimizer.zero_grad()
    obs, actions = th.as_tensor(buffer.observations), th.as_tensor(buffer.actions)
    adv = th.as_tensor(buffer.advantages).flatten()
    _, log_prob, entropy = policy.evaluate_actions(obs, actions)
    gate = dg_gate(adv, -surprisal(log_prob, entropy, "entropy_centered"))
    weighted_pg_loss(log_prob, adv, gate).backward()
    diff = max(float((a - (b.grad if b.grad is not None else th.zeros_like(b))).abs().max())
               for a, b in zip(captured["grads"], policy.parameters()))
    assert diff <= 1e-6, diff
    assert "train/scale_gate_mean" not in model.logger.name_to_value


def test_explicit_gate_is_bit_identical_to_the_default():
    kw = dict(n_steps=64, batch_size=32, n_epochs=2, **SMALL)
    assert_same_params(DGPPO("MlpPolicy", "Pendulum-v1", **kw).learn(128),
                       DGPPO("MlpPolicy", "Pendulum-v1", box_gate="scale_leave_one_out", **kw).learn(128))
    assert_same_params(DGA2C("MlpPolicy", "Pendulum-v1", n_steps=8, **SMALL).learn(64),
                       DGA2C("MlpPolicy", "Pendulum-v1", n_steps=8, box_gate="sample", **SMALL).learn(64))


def test_clipped_box_gate_is_the_clipped_surprisal():
    kw = dict(n_steps=64, batch_size=32, n_epochs=2, **SMALL)
    assert_same_params(DGPPO("MlpPolicy", "Pendulum-v1", box_gate="clipped", **kw).learn(128),
                       DGPPO("MlpPolicy", "Pendulum-v1", box_gate="sample", surprisal="clipped", **kw).learn(128))


@pytest.mark.parametrize("box_gate", ["scale_leave_one_out", "per_dimension"])
def test_routed_gates_forced_to_one_equal_sb3(force_unit_gate, box_gate):
    """With every DG gate 1 (the fixture), routing the gradient through the mean and the scale is SB3's."""
    kw = dict(n_steps=32, batch_size=16, n_epochs=2, **SMALL)
    assert_same_params(DGPPO("MlpPolicy", TinyBox(), box_gate=box_gate, **kw).learn(128),
                       PPO("MlpPolicy", TinyBox(), **kw).learn(128), atol=1e-6)
    assert_same_params(DGA2C("MlpPolicy", TinyBox(), box_gate=box_gate, n_steps=8, **SMALL).learn(64),
                       A2C("MlpPolicy", TinyBox(), n_steps=8, **SMALL).learn(64), atol=1e-6)


@pytest.mark.parametrize("box_gate", ROUTED)
def test_each_option_changes_the_update_and_logs_both_gates(box_gate):
    kw = dict(n_steps=64, batch_size=32, n_epochs=2, **SMALL)
    ours = DGPPO("MlpPolicy", TinyBox(), box_gate=box_gate, **kw).learn(128)
    with pytest.raises(AssertionError):
        assert_same_params(ours, DGPPO("MlpPolicy", TinyBox(), box_gate="sample", **kw).learn(128))
    logged = ours.logger.name_to_value
    assert 0.0 < logged["train/gate_mean"] < 1.0 and 0.0 < logged["train/scale_gate_mean"] < 1.0
    if box_gate == "mean_only":
        assert logged["train/scale_gate_mean"] == 0.5


def test_kondo_keep_all_with_a_routed_gate_equals_dg():
    kw = dict(n_steps=32, batch_size=16, n_epochs=2, box_gate="mean_only", **SMALL)
    assert_same_params(KondoPPO("MlpPolicy", TinyBox(), keep_fraction=1.0, **kw).learn(128),
                       DGPPO("MlpPolicy", TinyBox(), **kw).learn(128), atol=1e-6)


def test_kondo_routed_gate_trains_on_kept_samples_only():
    model = KondoA2C("MlpPolicy", TinyBox(), keep_fraction=0.25, box_gate="per_dimension", n_steps=16, **SMALL).learn(64)
    logged = model.logger.name_to_value
    assert logged["train/kondo_kept_fraction"] == 0.25 and 0.0 < logged["train/scale_gate_mean"] < 1.0


@pytest.mark.parametrize(
    "cls, env, kwargs, match",
    [
        (DGPPO, "Pendulum-v1", {"box_gate": "bogus"}, "box_gate must be one of"),
        (DGPPO, "CartPole-v1", {"box_gate": "mean_only"}, "needs Box actions without gSDE"),
        (DGPPO, "Pendulum-v1", {"box_gate": "scale_leave_one_out", "use_sde": True}, "use_sde=True"),
        (DGA2C, "CartPole-v1", {"box_gate": "clipped"}, "Box action spaces"),
        (DGA2C, "Pendulum-v1", {"box_gate": "clipped", "surprisal": "raw"}, "surprisal must be"),
        (KondoA2C, "Pendulum-v1", {"box_gate": "mean_only", "weighting": "reference", "keep_fraction": 0.5},
         "weighting='reference'"),
    ],
)
def test_box_gate_validation(cls, env, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls("MlpPolicy", env, **kwargs)


def test_routed_gate_needs_a_plain_diagonal_gaussian():
    """gSDE is refused in the constructor; a squashed or other distribution that gets past it, at train time."""
    with pytest.raises(ValueError, match="gSDE"):
        DGPPO("MlpPolicy", "Pendulum-v1", box_gate="mean_only", use_sde=True)
    model = DGPPO("MlpPolicy", "Pendulum-v1", box_gate="mean_only", n_steps=32, batch_size=32, **SMALL)
    model.policy.action_dist = SquashedDiagGaussianDistribution(1)
    with pytest.raises(ValueError, match="DiagGaussianDistribution"):
        model._gaussian()


@pytest.mark.parametrize(
    "cls, env, kwargs, expected",
    [
        (DGPPO, "Pendulum-v1", {}, "scale_leave_one_out"),  # the widening experiment's choice
        (DGPPO, "Pendulum-v1", {"use_sde": True}, "sample"),  # gSDE: no diagonal Gaussian to route
        (DGPPO, "CartPole-v1", {}, "sample"),  # discrete: the only gate
        (DGA2C, "Pendulum-v1", {}, "sample"),  # not measured inside A2C
        (KondoPPO, "Pendulum-v1", {"keep_fraction": 0.5}, "sample"),  # not measured with Kondo
        (KondoA2C, "Pendulum-v1", {"keep_fraction": 0.5, "weighting": "reference"}, "sample"),
    ],
)
def test_default_box_gate(cls, env, kwargs, expected):
    assert cls("MlpPolicy", env, **kwargs).box_gate == expected


def test_saved_box_gate_loads_back(tmp_path):
    """A saved model keeps its gate (a default-gate model too); one saved before the option loads as ``"sample"``."""
    for kwargs in ({}, {"box_gate": "sample"}, {"box_gate": "mean_only"}):
        model = DGPPO("MlpPolicy", "Pendulum-v1", n_steps=32, batch_size=32, **kwargs, **SMALL)
        model.save(tmp_path / "m")
        assert DGPPO.load(tmp_path / "m").box_gate == model.box_gate
    model = DGPPO("MlpPolicy", "Pendulum-v1", n_steps=32, batch_size=32, **SMALL)
    del model.box_gate  # as saved before the option existed
    model.save(tmp_path / "old")
    assert DGPPO.load(tmp_path / "old").box_gate == "sample"
    assert DGPPO.load(tmp_path / "old", env=gym.make("Pendulum-v1")).box_gate == "sample"


# ---------------------------------------------------------------- the action std over training


@pytest.mark.parametrize("cls", [PPO, DGPPO], ids=lambda c: c.__name__)
def test_action_std_is_logged_and_kept_over_training(cls):
    """SB3 logs ``train/std`` (mean over dimensions of exp(log_std)) after each update, for PPO and
    DGPPO alike; :class:`ActionStdCallback` keeps the curve: the start and every update."""
    model = cls("MlpPolicy", TinyBox(), n_steps=32, batch_size=16, n_epochs=2, **SMALL)
    callback = ActionStdCallback()
    model.learn(96, callback=callback)
    final = float(np.exp(model.policy.log_std.detach().numpy()).mean())
    assert model.logger.name_to_value["train/std"] == pytest.approx(final)
    assert [t for t, _, _ in callback.curve] == [0, 32, 64, 96]
    assert callback.curve[0][1] == 1.0 and callback.curve[-1][1] == pytest.approx(final)
    assert callback.curve[-1][2] == pytest.approx(action_std(model.policy).tolist())
    assert len(set(std for _, std, _ in callback.curve)) > 1  # it moves


def test_action_std_callback_records_nothing_for_discrete_policies():
    callback = ActionStdCallback()
    PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=16, n_epochs=1, **SMALL).learn(32, callback=callback)
    assert callback.curve == []
