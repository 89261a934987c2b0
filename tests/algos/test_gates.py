"""Hand-computed values for the DG and Kondo gates (arXiv 2603.14608, 2603.20526)."""

import math

import numpy as np
import pytest
import torch as th
from hypothesis import given, settings
from hypothesis import strategies as st

from dg_envs.algos.gates import delight, dg_gate, kondo_gate, weighted_pg_loss

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


def test_delight_hand_values():
    chi = delight(th.tensor([2.0, -1.0, 0.0]), th.tensor([-0.5, -3.0, -7.0]))
    assert th.equal(chi, th.tensor([1.0, -3.0, 0.0]))


def test_common_action_gets_one_half():
    # l = -log pi ~ 0 (pi ~ 1): delight 0 whatever the advantage.
    w = dg_gate(th.tensor([5.0, -5.0, 100.0]), th.tensor([0.0, 0.0, -0.0]))
    assert th.equal(w, th.full((3,), 0.5))


def test_gate_hand_values():
    # chi = 1 * 2 = 2 -> sigmoid(2); chi = -1 * 2 = -2 -> sigmoid(-2); eta = 2 halves chi.
    w = dg_gate(th.tensor([1.0, -1.0]), th.tensor([-2.0, -2.0]))
    assert th.allclose(w, th.tensor([1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2))]))
    w2 = dg_gate(th.tensor([1.0]), th.tensor([-2.0]), eta=2.0)
    assert th.allclose(w2, th.tensor([1 / (1 + math.exp(-1))]))


def test_eta_to_infinity_is_pg_over_two():
    adv, lp = th.tensor([3.0, -4.0, 0.1]), th.tensor([-5.0, -0.1, -9.0])
    assert th.allclose(dg_gate(adv, lp, eta=1e12), th.full((3,), 0.5))
    assert th.equal(dg_gate(adv, lp, eta=math.inf), th.full((3,), 0.5))


def test_eta_to_zero_is_hard_threshold():
    adv, lp = th.tensor([3.0, -4.0, 0.1, -0.2]), th.tensor([-5.0, -0.1, -9.0, -1.0])
    w = dg_gate(adv, lp, eta=1e-12)
    assert th.equal(w, (delight(adv, lp) > 0).float())


def test_huge_delight_is_finite():
    adv = th.tensor([3e38, -3e38, 3e38], dtype=th.float32)
    lp = th.tensor([-3e38, -3e38, -0.0], dtype=th.float32)
    chi = delight(adv, lp)
    assert th.isfinite(chi).all()
    w = dg_gate(adv, lp, eta=1e-30)
    assert th.isfinite(w).all() and th.equal(w, th.tensor([1.0, 0.0, 0.5]))
    keep = kondo_gate(adv, lp, price=1e38, eta=1e-3)
    assert keep.tolist()[:2] == [True, False]


def test_gate_is_detached():
    adv = th.tensor([1.0], requires_grad=True)
    lp = th.tensor([-1.0], requires_grad=True)
    assert not dg_gate(adv, lp).requires_grad


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_eta_validated(bad):
    with pytest.raises(ValueError, match="eta"):
        dg_gate(th.ones(2), -th.ones(2), eta=bad)


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="shape"):
        dg_gate(th.ones(2), th.ones(3))
    with pytest.raises(ValueError, match="shape"):
        kondo_gate(th.ones(2, 1), th.ones(2))


def test_kondo_hard_price():
    adv, lp = th.tensor([1.0, -1.0, 2.0, 0.5]), th.full((4,), -1.0)
    assert kondo_gate(adv, lp).tolist() == [True, False, True, True]  # price 0: positive delight
    assert kondo_gate(adv, lp, price=0.75).tolist() == [True, False, True, False]


def test_kondo_keep_fraction_top_k():
    chi = th.arange(100, dtype=th.float32)
    keep = kondo_gate(chi, -th.ones(100), keep_fraction=0.03)
    assert keep.sum() == 3 and keep[-3:].all()
    # k = max(1, round(rho * n)): one sample at least.
    assert kondo_gate(th.ones(10), -th.ones(10), keep_fraction=0.01).sum() == 1
    assert kondo_gate(chi, -th.ones(100), keep_fraction=1.0).all()


def test_kondo_stochastic_rates():
    g = th.Generator().manual_seed(0)
    n = 20000
    adv = th.cat([th.full((n,), 10.0), th.full((n,), -10.0), th.zeros(n)])
    keep = kondo_gate(adv, -th.ones(3 * n), price=0.0, eta=1.0, generator=g)
    rates = keep.view(3, n).float().mean(1)
    assert rates[0] > 0.99 and rates[1] < 0.01 and abs(rates[2] - 0.5) < 0.02


def test_kondo_stochastic_keep_fraction_rate():
    g = th.Generator().manual_seed(1)
    chi = th.randn(10000, generator=g)
    keep = kondo_gate(chi, -th.ones(10000), keep_fraction=0.1, eta=1e-4, generator=g)
    assert abs(keep.float().mean().item() - 0.1) < 0.01


def test_kondo_args_validated():
    with pytest.raises(ValueError, match="keep_fraction"):
        kondo_gate(th.ones(2), -th.ones(2), keep_fraction=0.0)
    with pytest.raises(ValueError, match="price"):
        kondo_gate(th.ones(2), -th.ones(2), price=math.inf)
    with pytest.raises(ValueError, match="either"):
        kondo_gate(th.ones(2), -th.ones(2), price=0.0, keep_fraction=0.5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=20), st.floats(1e-30, 1e30))
def test_gates_finite_for_finite_inputs(pairs, eta):
    adv = th.tensor([a for a, _ in pairs], dtype=th.float32)
    lp = th.tensor([b for _, b in pairs], dtype=th.float32)
    w = dg_gate(adv, lp, eta=eta)
    assert th.isfinite(w).all() and ((w >= 0) & (w <= 1)).all()
    for kwargs in ({}, {"keep_fraction": 0.5}, {"keep_fraction": 0.5, "eta": eta}, {"price": 1.0, "eta": eta}):
        keep = kondo_gate(adv, lp, **kwargs)
        assert keep.dtype == th.bool and keep.shape == adv.shape


@pytest.mark.parametrize("eta", [1e-300, 1e-45, float(np.float32(1e-38)) / 1e10])
def test_gate_with_underflowing_eta_is_never_nan(eta):
    # eta underflows to 0 in float32: the limit eta -> 0 is the hard gate, with 1/2 at chi = 0.
    w = dg_gate(th.tensor([0.0, 1.0, -1.0, 5.0]), th.tensor([-1.0, -1.0, -1.0, 0.0]), eta=eta)
    assert th.equal(w, th.tensor([0.5, 1.0, 0.0, 0.5]))


def test_weighted_pg_loss_hand_values():
    lp = th.tensor([-0.5, -2.0, -1.0], requires_grad=True)
    adv, w = th.tensor([1.0, -1.0, 2.0]), th.tensor([0.5, 0.25, 0.0])
    loss = weighted_pg_loss(lp, adv, w)
    assert math.isclose(float(loss), -(0.5 * 1 * -0.5 + 0.25 * -1 * -2.0 + 0.0) / 3, rel_tol=1e-6)
    loss.backward()
    assert th.allclose(lp.grad, th.tensor([-0.5, 0.25, 0.0]) / 3)


def test_weighted_pg_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        weighted_pg_loss(th.zeros(3), th.zeros(3), th.zeros(2))
