"""Speed benchmarks, each reported as ratios measured in one run (medians over repeats).

* :func:`dg_envs.bench.envs.bench_envs`: every env's steps/s vs Gymnasium's CartPole-v1;
* :func:`dg_envs.bench.vector_envs.bench_vector_envs`: the native vector envs' steps/s vs SB3's
  ``DummyVecEnv`` of the single env, N = 1,000 sub-envs;
* :func:`dg_envs.bench.friction_tax.bench_friction_tax`: ``DGA2C.learn`` steps/s with all four
  frictions vs clean (token reversal, H = 10, 100 sub-envs), batched and per-env;
* :func:`dg_envs.bench.wrappers.bench_wrappers`: each friction's steps/s wrapped / unwrapped,
  and :func:`~dg_envs.bench.wrappers.bench_vec_actors`: per-env vs batched policy actors;
* :func:`dg_envs.bench.algos.bench_algos`: DGPPO vs SB3 PPO training throughput, and
  KondoA2C vs DGA2C time inside ``train()`` with their MNIST test errors;
* :func:`dg_envs.bench.rllib_learners.bench_rllib_learners` (with the ``rllib`` extra): the
  RLlib learners' ``update``, DG-APPO vs APPO updates/s and Kondo (3%) vs DG learner time.

``dg-envs bench`` runs them all (:func:`run_all`; the RLlib one only where Ray is installed).
"""

import importlib.util

from dg_envs.bench.envs import BenchResult, bench_envs

__all__ = ["BenchResult", "bench_envs", "run_all"]


def run_all(quick: bool = False) -> dict:
    """Run every benchmark, print its table, and return the results by name.

    ``quick`` shrinks every size (a smoke test, not a measurement).
    """
    from dg_envs.bench.algos import bench_algos
    from dg_envs.bench.wrappers import bench_vec_actors, bench_wrappers

    from dg_envs.bench import friction_tax, vector_envs

    steps, repeats = (2_000, 2) if quick else (20_000, 5)
    results = {}
    print("== environments: steps/s vs CartPole-v1 ==")
    results["envs"] = bench_envs(n_steps=steps, repeats=repeats)
    print("\n== native vector envs vs DummyVecEnv ==")
    num_envs = 100 if quick else 1000
    results["vector_envs"] = vector_envs.bench_vector_envs(num_envs=num_envs, quick=quick)
    print(vector_envs.format_table(results["vector_envs"], num_envs))
    print("\n== the friction tax: learning with all four frictions vs clean ==")
    results["friction_tax"] = friction_tax.bench_friction_tax(quick=quick)
    print(friction_tax.format_table(results["friction_tax"]))
    print("\n== friction wrappers: steps/s wrapped / unwrapped ==")
    results["wrappers"] = bench_wrappers(n_steps=steps, repeats=repeats)
    print()
    results["vec_actors"] = bench_vec_actors(n_steps=max(steps // 20, 1), repeats=repeats)
    print("\n== algorithms ==")
    results["algos"] = bench_algos(quick=quick)
    if importlib.util.find_spec("ray") is not None:
        from dg_envs.bench import rllib_learners

        print("\n== RLlib learners: DG-APPO vs APPO, Kondo vs DG ==")
        results["rllib_learners"] = rllib_learners.bench_rllib_learners(quick=quick)
        print(rllib_learners.format_table(results["rllib_learners"]))
    return results
