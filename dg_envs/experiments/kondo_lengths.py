"""Experiment ``kondo-lengths``: the longest token-reversal prompt each method solves at an equal budget.

The claim (arXiv 2603.20526, PAPERS.md): at an equal budget the longest solved length H is
Kondo (3% kept) ~29, DG ~27, PMPO ~12, PPO ~8, PG ~5 — the gated methods solve tasks several
times longer. Here every method gets the same runs of the reference launcher's shape
(:func:`~dg_envs.experiments.paper.token_run_spec`: 10 prompts x 10 samples per update, the
group baseline, the reference transformer, Adam 3e-4, ``total_updates`` updates; clean by
default) at every H of ``lengths`` (M=2), and a seed *solves* H when its greedy sequence error
on ``eval_episodes`` clean prompts is below ``solved_below``. A method's longest solved H is,
per seed, the largest H of ``lengths`` solved (0 if none); the page gives its mean ± std.
"Equal budget" means the same updates of the same 100 answers at every H (so more tokens at
larger H); Kondo's backward passes are ~3% of the others'.

Methods (the reference code's, :mod:`dg_envs.algos.reference`): ``Kondo 3%``
(:class:`~dg_envs.algos.KondoPG`), ``DG`` (:class:`~dg_envs.algos.DGPG`), ``PMPO``, ``PPO``
(:class:`~dg_envs.algos.ReportedRatioPPO`), ``REINFORCE`` (:class:`~dg_envs.algos.ReportedRatioPG`:
the paper's PG; on clean runs its ratio is exactly 1 at the one step per batch).

Example:
    >>> from dg_envs.experiments import kondo_lengths as kl
    >>> kl.longest_solved({4: 0.0, 6: 0.02, 8: 0.4, 10: 0.01}, solved_below=0.05)
    10
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from dg_envs.algos.transformer import REFERENCE_TRANSFORMER_KWARGS
from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, run_sweep, write_page
from dg_envs.experiments.paper import (
    VERDICT_RULES, Claim, check_methods, claims_table, judge, method_catalogue, token_run_spec, train_token_run,
)
from dg_envs.validation import check_int, check_real

NAME = "kondo-lengths"

#: Config fields that change no run's result: they say which runs exist, or only the analysis reads them.
GRID_FIELDS = ("methods", "method_settings", "lengths", "solved_below")

#: The headline claims on the longest solved length (higher is better).
CLAIMS = (
    Claim("DG solves >= 27/12 x PMPO's length", "DG ~27 vs PMPO ~12 (arXiv 2603.20526)", a="DG", b="PMPO",
          factor=27 / 12, higher_is_better=True),
    Claim("DG solves >= 27/8 x PPO's length", "DG ~27 vs PPO ~8 (same)", a="DG", b="PPO", factor=27 / 8,
          higher_is_better=True),
    Claim("DG solves >= 27/5 x REINFORCE's length", "DG ~27 vs PG ~5 (same)", a="DG", b="REINFORCE", factor=27 / 5,
          higher_is_better=True),
    Claim("Kondo 3% within 1.2 x DG's length at <= 5% of its backward samples", "Kondo ~29 vs DG ~27 (same)",
          a="Kondo 3%", b="DG", factor=1.2, kind="within", baseline="REINFORCE", cost_factor=0.05,
          higher_is_better=True),
)

LABELS = ("Kondo 3%", "DG", "PMPO", "PPO", "REINFORCE")


@dataclass
class Config:
    """Settings of the length sweep.

    Timing on this 2-core machine, one torch thread per run, other jobs running: each answer is
    scored in one transformer pass (:func:`~dg_envs.algos.transformer.whole_answer_log_prob`),
    so DG's update costs 0.045 s at H=4 and 0.47 s at H=20 (the rollout's H steps dominate:
    each runs the transformer over the tokens so far). The full sweep (7 lengths x 5 methods x
    3 seeds = 105 runs, 1,000 updates) is ~6 hours of one core, a third of it at H=20.
    """

    methods: tuple[str, ...] = LABELS
    """Method labels (keys of ``method_settings``)."""
    method_settings: dict[str, dict] = field(default_factory=lambda: method_catalogue(*LABELS))
    """Label -> ``{"algorithm": registry name, **keyword arguments}`` (:data:`~dg_envs.experiments.paper.METHODS`)."""
    lengths: tuple[int, ...] = (4, 6, 8, 10, 12, 16, 20)
    """Prompt lengths H (the paper's range reaches ~29; ours stops where a CPU run stays under an hour)."""
    vocab_size: int = 2
    """Vocabulary size M."""
    frictions: dict[str, Any] = field(default_factory=dict)
    """:func:`~dg_envs.wrappers.apply_frictions` keyword arguments of every run (empty: clean, as the paper)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Other ``TokenReversal-v0`` arguments (``task``, ``reward``, ``kappa``); empty: its defaults."""
    prompts: int = 10
    """Prompts per update (the reference's 10)."""
    samples_per_prompt: int = 10
    """Answers per prompt (the reference's 10): the group of the group baseline."""
    total_updates: int = 1000
    """Learner updates per run, the same at every H (the equal budget; the launcher's 1,000)."""
    learning_rate: float = 3e-4
    """Adam's step size (the reference's)."""
    transformer: dict[str, Any] = field(default_factory=lambda: dict(REFERENCE_TRANSFORMER_KWARGS))
    """``TokenTransformerExtractor`` arguments (the reference's)."""
    eval_episodes: int = 1000
    """Clean greedy episodes per evaluation."""
    solved_below: float = 0.05
    """A seed solves H when its sequence error is below this (our threshold; the paper states none
    in what we have). Read by the analysis only: changing it re-analyses, it does not re-run."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    jobs: int = 1
    """Training runs side by side (processes, one torch thread each)."""

    @classmethod
    def quick(cls) -> Config:
        """Half a minute on 2 CPU cores: H in {2, 3}, 60 updates, every method."""
        return cls(lengths=(2, 3), total_updates=60, eval_episodes=200)


def check_config(config: Config) -> None:
    """Every setting checked before any run (``ValueError`` naming it)."""
    check_methods(config.methods, config.method_settings)
    if not config.lengths:
        raise ValueError("lengths must hold at least one length")
    for length in config.lengths:
        check_int(length, "lengths", low=1)
    if len(set(config.lengths)) != len(config.lengths):
        raise ValueError(f"lengths must not repeat a length, got {config.lengths}")
    for name in ("prompts", "samples_per_prompt", "total_updates", "eval_episodes"):
        check_int(getattr(config, name), name, low=1)
    check_int(config.vocab_size, "vocab_size", low=2)
    check_real(config.learning_rate, "learning_rate", low=0.0, low_open=True)
    check_real(config.solved_below, "solved_below", low=0.0, low_open=True, high=1.0)


def grid(config: Config) -> list[dict[str, Any]]:
    """The runs: every (H, method, seed), with the method's settings."""
    return [{"length": h, "method": m, "seed": s, "settings": {"method": config.method_settings[m]}}
            for h in config.lengths for m in config.methods for s in config.seeds]


def run_job(job: dict, config: Config, tensorboard_log: str | None = None) -> dict:
    """Train one grid point; its sequence error and cost."""
    spec = token_run_spec(
        job["method"], config.method_settings, length=job["length"], vocab_size=config.vocab_size,
        prompts=config.prompts, samples_per_prompt=config.samples_per_prompt, total_updates=config.total_updates,
        learning_rate=config.learning_rate, transformer=config.transformer, frictions=config.frictions,
        seed=job["seed"], env_kwargs=config.env_kwargs, tensorboard_log=tensorboard_log)
    return {**train_token_run(spec, config.eval_episodes), "vocab_size": config.vocab_size,
            "prompts": config.prompts, "samples_per_prompt": config.samples_per_prompt,
            "solved_below": config.solved_below}


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """Every grid point, resumed from ``out_dir``'s records (``config.jobs`` at a time)."""
    check_config(config)
    work = partial(run_job, config=config, tensorboard_log=tensorboard_log)
    return run_sweep(NAME, config, grid(config), work, out_dir, GRID_FIELDS, progress=progress)


def longest_solved(errors: Mapping[int, float], solved_below: float) -> int:
    """The largest H whose error is below ``solved_below`` (0 if none): one seed's longest solved length."""
    solved = [h for h, e in errors.items() if e < solved_below]
    return max(solved, default=0)


def longest_by_method(records: list[dict], solved_below: float) -> dict[str, list[int]]:
    """Method -> per-seed longest solved H."""
    out: dict[str, dict[int, dict[int, float]]] = {}
    for r in records:
        out.setdefault(r["method"], {}).setdefault(r["seed"], {})[r["length"]] = r["sequence_error"]
    return {m: [longest_solved(by_seed[s], solved_below) for s in sorted(by_seed)] for m, by_seed in out.items()}


def analyse(records: list[dict], out_dir: Path, solved_below: float | None = None) -> str:
    """Sequence error per H and method, the longest solved H, the claims, and the figure.

    ``solved_below``: the threshold (default: the one the records were made with).
    """
    if solved_below is None:
        solved_below = records[0]["solved_below"]
    methods = list(dict.fromkeys(r["method"] for r in records))
    lengths = sorted({r["length"] for r in records})
    err = lambda m, h: [r["sequence_error"] for r in records if r["method"] == m and r["length"] == h]  # noqa: E731
    table = markdown_table(["H"] + methods, [[h] + [format_mean_spread(err(m, h), ".2g") for m in methods]
                                             for h in lengths])
    longest = longest_by_method(records, solved_below)
    top = lengths[-1]
    longest_table = markdown_table(["method", "longest H solved", "seeds solving every H tried"], [
        [m, format_mean_spread(longest[m], ".3g"), sum(1 for x in longest[m] if x == top)] for m in methods])
    costs = {m: [r["backward_samples"] for r in records if r["method"] == m] for m in methods}
    r0 = records[0]
    budget = (f"{r0['updates']:,} updates x {r0['prompts']}x{r0['samples_per_prompt']} answers at each H in "
              f"{lengths}, M={r0['vocab_size']}, solved: error < {solved_below:g}")
    rows = [(c, judge(c, longest, costs), budget) for c in CLAIMS]
    text = (f"Greedy sequence error on {r0['eval_episodes']} clean prompts (mean ± std over seeds):\n\n{table}\n\n"
            f"Longest prompt length H solved (sequence error < {solved_below:g}), per seed, then mean ± std; "
            f"a seed that solves every H tried is censored at H={top}:\n\n{longest_table}\n\n"
            f"## The papers' claims\n\n{claims_table(rows)}\n\n{VERDICT_RULES}")

    fig, (ax_err, ax_len) = new_figure(ncols=2)
    for m in methods:
        ax_err.errorbar(lengths, [np.mean(err(m, h)) for h in lengths], yerr=[np.std(err(m, h)) for h in lengths],
                        marker="o", capsize=3, label=m)
    ax_err.axhline(solved_below, color="grey", linestyle=":", linewidth=1)
    ax_err.set_xlabel("prompt length H")
    ax_err.set_ylabel("sequence error")
    ax_err.set_title(f"equal budget: {r0['updates']:,} updates of 100 answers", fontsize=9)
    ax_err.legend(fontsize=7)
    ax_len.bar(methods, [np.mean(longest[m]) for m in methods], yerr=[np.std(longest[m]) for m in methods], capsize=3)
    ax_len.set_ylabel(f"longest H solved (error < {solved_below:g})")
    ax_len.tick_params(axis="x", labelsize=7)
    ax_len.set_title("longest solved length", fontsize=9)
    return write_page(out_dir, NAME, text, fig)
