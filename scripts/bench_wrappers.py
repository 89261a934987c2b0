"""Steps/s of an env under each friction wrapper vs unwrapped (see dg_envs.bench.wrappers)."""

import argparse

from dg_envs.bench.wrappers import MIN_RATIO, bench_vec_actors, bench_vector_stack, bench_wrappers, is_stack
from dg_envs.cli import positive_int

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium env id (default CartPole-v1)")
    parser.add_argument("--steps", type=positive_int, default=2_000, help="steps per repeat (short slices, many repeats: robust to a busy machine)")
    parser.add_argument("--repeats", type=positive_int, default=41, help="interleaved repeats (the median is reported)")
    parser.add_argument("--n-envs", type=positive_int, default=100, help="sub-envs of the batched comparisons (token reversal)")
    args = parser.parse_args()
    results = bench_wrappers(env_id=args.env, n_steps=args.steps, repeats=args.repeats)
    print()
    bench_vec_actors(n_envs=args.n_envs, n_steps=max(args.steps // 4, 1), repeats=args.repeats)
    print()
    bench_vector_stack(n_envs=args.n_envs, n_steps=max(args.steps // 4, 1), repeats=args.repeats)
    slow = [r.label for r in results if not r.needs_policy and not is_stack(r.label) and r.ratio < MIN_RATIO]
    raise SystemExit(f"below {MIN_RATIO} of unwrapped: {slow}" if slow else 0)
