"""Experiment ``token-reversal-paper``: token reversal at the reference launcher's budget, each friction and all four.

The claims (PAPERS.md): with all four frictions at once (H=10, M=2, 10k steps) PG ~60%, PMPO
~15%, PPO ~10%, DG ~0.3% sequence error, "roughly 10x lower" (arXiv 2603.20521); without
frictions the Kondo gate keeping 3% of the samples matches DG (~1e-4) at ~3% of the backward
passes (arXiv 2603.20526). ``token-reversal-frictions`` runs our SB3-style algorithms at a CPU
budget with an MLP; this experiment runs the reference launcher's setting
(``experiments/dpg/run.py`` of google-deepmind/egg):

* reverse a prompt of H=10 tokens over M=2 symbols, one token per step, reward = fraction of
  tokens correct at the end (``dg_envs/TokenReversal-v0`` defaults);
* 10 prompts x 10 samples per step: 100 sub-envs, ``group_size`` 10 (a group shares its
  prompt), ``n_steps`` = H, so every update sees 100 whole answers;
* the reference transformer (:class:`~dg_envs.algos.transformer.TokenTransformerExtractor`
  with :data:`~dg_envs.algos.transformer.REFERENCE_TRANSFORMER_KWARGS`), Adam 3e-4;
* 1,000 updates (the launcher's default; ``total_updates=10_000`` for the papers' figures);
* settings: ``clean``, each friction alone, ``all`` four at once, at the rates of
  :data:`~dg_envs.experiments.paper.TOKEN_FRICTIONS` (the papers' rates are not released);
* the reference methods (one Adam step per batch, the group baseline, no critic):
  ``REINFORCE`` (:class:`~dg_envs.algos.ReportedRatioPG`, the reference's: a ratio against
  the *reported* behaviour probability, which the lying bug fools), ``PPO``
  (:class:`~dg_envs.algos.ReportedRatioPPO`), ``PMPO``, ``DG`` (:class:`~dg_envs.algos.DGPG`),
  ``Kondo 3%`` (:class:`~dg_envs.algos.KondoPG`); ``DG (answer)``, the reference DG with every
  token gated by its answer's surprisal (``surprisal="episode"``; ``DG eta 0.1`` and ``DG eta
  0``, a sharper token gate, on request); and ours (``sb3:`` labels, with a critic on the same
  transformer, the same env steps, minibatches of whole answers): ``DGPPO``, ``DGA2C``,
  ``KondoPPO`` (3%), ``PPO`` (relabelled), ``PG``, ``IWPG``. A stale actor lags in learner
  updates: one gradient step for the reference methods and A2C's family, 4 epochs of
  minibatches (16 steps) for PPO's.

Metric: the greedy policy's sequence error (fraction of imperfect answers) on
``eval_episodes`` fresh clean prompts (:func:`~dg_envs.experiments.training.sequence_error`).

Example:
    >>> from dg_envs.experiments import token_reversal_paper as trp
    >>> sorted(trp.settings(trp.Config()))
    ['all', 'bug', 'clean', 'discovery', 'reward', 'stale']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from dg_envs.algos.transformer import REFERENCE_TRANSFORMER_KWARGS
from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, run_sweep, write_page
from dg_envs.experiments.paper import (
    TOKEN_FRICTIONS, VERDICT_RULES, Claim, check_methods, claims_table, friction_settings, judge, method_catalogue,
    token_run_spec, train_token_run,
)
from dg_envs.validation import check_int, check_real

NAME = "token-reversal-paper"

#: Config fields that change no run's result: they say which runs exist (what a run resolves to is in
#: its job's settings), left out of the run keys' hash.
GRID_FIELDS = ("methods", "method_settings", "settings", "frictions")

#: The headline claims, by the setting they are judged in.
CLAIMS: dict[str, tuple[Claim, ...]] = {
    "all": (
        Claim("DG <= 0.1 x PPO", "DG ~0.3% vs PPO ~10% (arXiv 2603.20521: all four frictions, 10k steps)",
              a="DG", b="PPO", factor=0.1),
        Claim("DG <= 0.1 x REINFORCE", "DG ~0.3% vs PG ~60% (same)", a="DG", b="REINFORCE", factor=0.1),
        Claim("DG <= 0.1 x PMPO", "DG ~0.3% vs PMPO ~15% (same)", a="DG", b="PMPO", factor=0.1),
        Claim("DG (answer) <= 0.1 x PPO", "the first claim with DG's gate on each answer's surprisal",
              a="DG (answer)", b="PPO", factor=0.1),
        Claim("sb3:DGPPO <= 0.1 x sb3:PPO", "the same claim for our SB3-style methods", a="sb3:DGPPO",
              b="sb3:PPO", factor=0.1),
        Claim("sb3:DGPPO <= 0.1 x sb3:PG", "the same claim for our SB3-style methods", a="sb3:DGPPO", b="sb3:PG",
              factor=0.1),
    ),
    "clean": (
        Claim("Kondo 3% within 1.2 x DG at <= 5% of its backward samples",
              "DG ~1e-4, Kondo ~1e-4 at ~3% of the backward passes (arXiv 2603.20526: H=10, M=2)",
              a="Kondo 3%", b="DG", factor=1.2, kind="within", baseline="REINFORCE", cost_factor=0.05),
        Claim("sb3:KondoPPO within 1.2 x sb3:DGPPO at <= 5% of its backward samples",
              "the same claim for our SB3-style methods", a="sb3:KondoPPO", b="sb3:DGPPO", factor=1.2,
              kind="within", baseline="sb3:PG", cost_factor=0.05),
    ),
}

REFERENCE_LABELS = ("REINFORCE", "PPO", "PMPO", "DG", "Kondo 3%")
#: The reference DG with the gate on each answer's surprisal instead of each token's (``surprisal="episode"``).
VARIANT_LABELS = ("DG (answer)",)
#: The reference DG with a sharper token gate (not in the default grid: ``--set methods=...`` with these labels).
GATE_LABELS = ("DG eta 0.1", "DG eta 0")
SB3_LABELS = ("sb3:DGPPO", "sb3:DGA2C", "sb3:KondoPPO", "sb3:PPO", "sb3:PG", "sb3:IWPG")


@dataclass
class Config:
    """Settings of the paper-budget token-reversal sweep.

    Timing on this 2-core machine, one torch thread per run, other jobs running (load 4-5), over
    15 updates at H=10: the reference methods score each answer in one transformer pass
    (:func:`~dg_envs.algos.transformer.whole_answer_log_prob`), DG 0.22 s per update clean and
    0.37-0.54 s with all four frictions (a stale actor runs its own snapshot forward every
    step), so a run of 1,000 updates takes 4-9 minutes (2-4 on an idle core). The ``sb3:``
    methods train on minibatches of whole answers, one transformer pass per answer
    (``whole_episodes``): ``sb3:DGPPO`` (4 epochs of 4 minibatches) spends 0.33 s per update in
    ``train()`` with all four frictions (1.85 s when each token took its own pass). The
    reference methods' grid (6 settings x 5 methods x 3 seeds = 90 runs) is ~5-10 hours of one
    core; x10 at 10,000 updates. A sweep for ``jobs=N`` on a larger machine, resumed across
    sittings; ``--set settings=...`` / ``--set methods=...`` run part of the grid first (the
    records stay valid for the whole grid), and ``--report`` writes the page of all the runs
    recorded so far.
    """

    methods: tuple[str, ...] = REFERENCE_LABELS + VARIANT_LABELS + SB3_LABELS
    """Method labels (keys of ``method_settings``): the reference methods, DG gated per answer, then ours (``sb3:``)."""
    method_settings: dict[str, dict] = field(
        default_factory=lambda: method_catalogue(*REFERENCE_LABELS, *VARIANT_LABELS, *GATE_LABELS, *SB3_LABELS))
    """Label -> ``{"algorithm": registry name, **keyword arguments}`` (:data:`~dg_envs.experiments.paper.METHODS`)."""
    settings: tuple[str, ...] = ("clean", "stale", "bug", "reward", "discovery", "all")
    """Which frictions: ``"clean"``, a name of ``frictions`` (that one alone), ``"all"`` (all of them at once)."""
    frictions: dict[str, dict] = field(default_factory=lambda: {k: dict(v) for k, v in TOKEN_FRICTIONS.items()})
    """Friction name -> :func:`~dg_envs.wrappers.apply_frictions` keyword arguments (rates as data)."""
    length: int = 10
    """Prompt length H (the launcher's 10)."""
    vocab_size: int = 2
    """Vocabulary size M (the launcher's 2)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Other ``TokenReversal-v0`` arguments (``task``, ``reward``, ``kappa``); empty: its defaults."""
    prompts: int = 10
    """Prompts per update (the reference's 10)."""
    samples_per_prompt: int = 10
    """Answers sampled per prompt (the reference's 10): the group of the group baseline."""
    total_updates: int = 1000
    """Learner updates per run (the launcher's 1,000; the papers' figures: 10,000)."""
    learning_rate: float = 3e-4
    """Adam's step size, every method (the reference's 3e-4)."""
    transformer: dict[str, Any] = field(default_factory=lambda: dict(REFERENCE_TRANSFORMER_KWARGS))
    """``TokenTransformerExtractor`` arguments (the reference's: width 64, 4 heads, 3 layers, ff 128, no biases)."""
    eval_episodes: int = 1000
    """Clean greedy episodes per evaluation (resolution 0.1%)."""
    eval_every: int = 100
    """Sequence error is recorded every this many updates (learning curves; 0: only at the end)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    jobs: int = 1
    """Training runs side by side (processes, one torch thread each)."""

    @classmethod
    def quick(cls) -> Config:
        """About a minute on 2 CPU cores: H=3, 20 updates, clean and all four, four methods."""
        return cls(methods=("REINFORCE", "DG", "Kondo 3%", "sb3:PPO"), settings=("clean", "all"), length=3,
                   total_updates=20, eval_episodes=200, eval_every=10)


def check_config(config: Config) -> None:
    """Every setting checked before any run (``ValueError`` naming it)."""
    check_methods(config.methods, config.method_settings)
    if not config.settings:
        raise ValueError("settings must name at least one setting")
    settings(config)
    for name in ("length", "prompts", "samples_per_prompt", "total_updates", "eval_episodes"):
        check_int(getattr(config, name), name, low=1)
    check_int(config.vocab_size, "vocab_size", low=2)
    check_int(config.eval_every, "eval_every", low=0)
    check_real(config.learning_rate, "learning_rate", low=0.0, low_open=True)


def settings(config: Config) -> dict[str, dict]:
    """Setting name -> ``apply_frictions`` keyword arguments (:func:`~dg_envs.experiments.paper.friction_settings`)."""
    return friction_settings(config.settings, config.frictions)


def grid(config: Config) -> list[dict[str, Any]]:
    """The runs: every (setting, method, seed), with what each resolves to in ``settings``."""
    frictions = settings(config)
    return [{"setting": name, "method": m, "seed": s,
             "settings": {"method": config.method_settings[m], "frictions": frictions[name]}}
            for name in config.settings for m in config.methods for s in config.seeds]


def job_spec(job: dict, config: Config, tensorboard_log: str | None = None):
    """The :class:`~dg_envs.experiments.training.RunSpec` of one grid point (also what the probe
    scripts in ``scripts/`` build their runs from, so they train exactly the sweep's run)."""
    return token_run_spec(
        job["method"], config.method_settings, length=config.length, vocab_size=config.vocab_size,
        prompts=config.prompts, samples_per_prompt=config.samples_per_prompt, total_updates=config.total_updates,
        learning_rate=config.learning_rate, transformer=config.transformer, frictions=job["settings"]["frictions"],
        seed=job["seed"], env_kwargs=config.env_kwargs, eval_every=config.eval_every, tensorboard_log=tensorboard_log)


def run_job(job: dict, config: Config, tensorboard_log: str | None = None) -> dict:
    """Train one grid point; its sequence error, learning curve and cost."""
    spec = job_spec(job, config, tensorboard_log)
    return {**train_token_run(spec, config.eval_episodes), "length": config.length, "vocab_size": config.vocab_size,
            "prompts": config.prompts, "samples_per_prompt": config.samples_per_prompt}


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """Every grid point, resumed from ``out_dir``'s records (``config.jobs`` at a time)."""
    check_config(config)
    work = partial(run_job, config=config, tensorboard_log=tensorboard_log)
    return run_sweep(NAME, config, grid(config), work, out_dir, GRID_FIELDS, progress=progress)


def _values(records: list[dict], setting: str, key: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in records:
        if r["setting"] == setting:
            out.setdefault(r["method"], []).append(r[key])
    return out


def _in_order(canonical: tuple[str, ...], labels) -> list[str]:
    """The distinct ``labels``, those in ``canonical`` first and in its order (a page's columns do
    not depend on which runs a sweep appended last), the rest as they come.

    >>> _in_order(("clean", "bug", "all"), ["all", "x", "clean", "all"])
    ['clean', 'all', 'x']
    """
    seen = list(dict.fromkeys(labels))
    return [c for c in canonical if c in seen] + [label for label in seen if label not in canonical]


def budget(records: list[dict]) -> str:
    """The budget of the records, as the claims table says it."""
    r = records[0]
    seeds = len({x["seed"] for x in records})
    return (f"{r['updates']:,} updates x {r['prompts']}x{r['samples_per_prompt']} answers, H={r['length']}, "
            f"M={r['vocab_size']}, {seeds} seeds")


def analyse(records: list[dict], out_dir: Path) -> str:
    """Sequence error per setting and method, backward samples, the claims, and the figure."""
    methods = _in_order(Config.methods, (r["method"] for r in records))
    names = _in_order(Config.settings, (r["setting"] for r in records))
    err = {n: _values(records, n, "sequence_error") for n in names}
    table = markdown_table(["setting"] + methods,
                           [[n] + [format_mean_spread(err[n].get(m, []), ".2g") for m in methods] for n in names])
    cost = {m: np.mean([r["backward_samples"] for r in records if r["method"] == m]) for m in methods}
    steps = {m: np.mean([r["env_steps"] for r in records if r["method"] == m]) for m in methods}
    cost_table = markdown_table(["method"] + methods, [["backward samples per env step"]
                                                        + [f"{cost[m] / steps[m]:.3g}" for m in methods]])
    floor = 1.0 / records[0]["eval_episodes"]
    rows = []
    for setting, claims in CLAIMS.items():
        if setting in err:
            costs = _values(records, setting, "backward_samples")
            rows += [(c, judge(c, err[setting], costs, floor=floor), f"{budget(records)}, {setting}") for c in claims]
    diverged = [f"{r['method']} at {r['setting']}, seed {r['seed']}, update {r['diverged_at']:,}"
                for r in records if "diverged_at" in r]
    diverged_text = ("\n\nDiverged runs (the policy's parameters stopped being finite; counted as sequence error "
                     "1.0, since a policy that outputs NaN answers nothing): " + "; ".join(diverged) + "."
                     if diverged else "")
    text = (f"Greedy sequence error on {records[0]['eval_episodes']} clean prompts (mean ± std over seeds). "
            "Reference methods: one Adam step per batch, the group baseline, no critic; `sb3:` methods: ours, "
            f"with a critic.\n\n{table}{diverged_text}\n\nSamples that got a backward pass, per env step (tokens; PPO's "
            f"family: 4 epochs):\n\n{cost_table}\n\n## The papers' claims\n\n"
            + (claims_table(rows) if rows else "No setting of the claims ('all', 'clean') was run.")
            + f"\n\n{VERDICT_RULES}")

    fig, axes = new_figure(ncols=2)
    width = 0.8 / max(len(methods), 1)
    for i, m in enumerate(methods):
        means = [np.mean(err[n].get(m, [np.nan])) for n in names]
        stds = [np.std(err[n].get(m, [np.nan])) for n in names]
        axes[0].bar(np.arange(len(names)) + i * width, means, width, yerr=stds, capsize=2, label=m,
                    hatch="//" if m.startswith("sb3:") else None)
    axes[0].set_xticks(np.arange(len(names)) + width * (len(methods) - 1) / 2, names, fontsize=8)
    axes[0].set_ylabel("sequence error")
    axes[0].set_title("token reversal: clean, each friction, all four", fontsize=9)
    axes[0].legend(fontsize=6)
    curve_setting = "all" if "all" in names else names[-1]
    for m in methods:
        curves = [r["curve"] for r in records if r["method"] == m and r["setting"] == curve_setting]
        if curves:
            # A diverged run's curve stops early; from there its error is 1.0 (see the page's text).
            updates = max(curves, key=len)
            errors = [[dict(c).get(u, 1.0) for u, _ in updates] for c in curves]
            axes[1].plot([u for u, _ in updates], np.mean(errors, axis=0),
                         marker=".", label=m, linestyle="--" if m.startswith("sb3:") else "-")
    axes[1].set_xlabel("learner updates")
    axes[1].set_ylabel("sequence error")
    axes[1].set_title(f"learning curves, {curve_setting}", fontsize=9)
    axes[1].legend(fontsize=6)
    return write_page(out_dir, NAME, text, fig)
