"""Fixtures for the algos tests."""

import pytest
import torch as th


@pytest.fixture
def force_unit_gate(monkeypatch):
    """Force every gate weight to exactly 1 so the rest of the pipeline must equal SB3."""
    from dg_envs.algos import weighting

    monkeypatch.setattr(weighting, "dg_gate", lambda adv, lp, eta=1.0: th.ones_like(adv))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny nets on a shared 2-core machine: one torch thread is many times faster than two."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)
