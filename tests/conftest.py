"""Fixtures for every test."""

import pytest
import torch as th


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny nets on a shared 2-core machine: one torch thread is many times faster than two."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)
