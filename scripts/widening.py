"""Does DG widen the Gaussian? PPO vs DGPPO and each ``box_gate`` option: the action std over training.

A smoke measurement for issue 14 (one seed, a small budget; the sweep that decides comes later):
each method trains on a clean task with the settings of ``dg_envs/zoo/hyperparams/dgppo.yml``
(a Suite task takes HalfCheetah-v5's), and the script prints the action std (mean over
dimensions of ``exp(log_std)``, SB3's ``train/std``) at a few points and at the end, the greedy
return over clean episodes, and the seconds per run.

    OMP_NUM_THREADS=1 python scripts/widening.py --env InvertedPendulum-v5 --timesteps 20000
    OMP_NUM_THREADS=1 python scripts/widening.py --env dg_envs/dmc-cheetah-run-v0 --timesteps 20480
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

from dg_envs.experiments.widening import METHODS, parse_method



def greedy_return(model, env_id: str, episodes: int, seed: int = 10_000) -> float:
    env = gym.make(env_id)
    total = 0.0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True)[0])
            total += float(reward)
            done = terminated or truncated
    return total / episodes


def main() -> None:
    from dg_envs.cli import positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="InvertedPendulum-v5")
    parser.add_argument("--timesteps", type=positive_int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=positive_int, default=3, help="greedy evaluation episodes at the end")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()

    import torch

    import dg_envs  # noqa: F401  (registers the ids)
    from dg_envs.algos import get_algorithm
    from dg_envs.callbacks import ActionStdCallback
    from dg_envs.zoo import load_hyperparams

    torch.set_num_threads(1)
    zoo_env = args.env if args.env.endswith("-v5") else "HalfCheetah-v5"
    params = load_hyperparams("dgppo", zoo_env)
    for key in ("n_timesteps", "policy", "n_envs"):
        params.pop(key)
    print(f"{args.env}, {args.timesteps} steps, seed {args.seed}, settings of {zoo_env} in dgppo.yml: {params}")
    for method in args.methods:
        name, box_gate = parse_method(method)  # "DGPPO": the sample gate
        extra = {"box_gate": box_gate} if name == "DGPPO" else {}
        model = get_algorithm(name)("MlpPolicy", args.env, seed=args.seed, device="cpu", **params, **extra)
        callback = ActionStdCallback()
        start = time.perf_counter()
        model.learn(args.timesteps, callback=callback)
        seconds = time.perf_counter() - start
        curve = callback.curve
        points = [curve[i] for i in sorted({0, len(curve) // 4, len(curve) // 2, 3 * len(curve) // 4, len(curve) - 1})]
        along = "  ".join(f"{t}:{std:.3f}" for t, std, _ in points)
        final = curve[-1][2]
        print(f"{method:27s} std {curve[-1][1]:.3f} (per dim {np.round(final, 2).tolist()})  along [{along}]  "
              f"return {greedy_return(model, args.env, args.episodes):.1f}  {seconds:.0f}s")


if __name__ == "__main__":
    main()
