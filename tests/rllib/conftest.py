"""RLlib tests: each module skips without the ``rllib`` extra; one local Ray of 2 CPUs per test process."""

import pytest


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray cluster with 2 CPUs (no dashboard), shut down at the end of the session."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
