"""Experiment ``bandit-geometry``: where do PG's and DG's expected gradients point?

The DG paper's tabular analysis (arXiv 2603.14608), computed exactly: no sampling noise.
A softmax policy over ``n_arms`` arms in each of ``n_contexts`` contexts, reward
1{a == y*}. Data come from a behaviour distribution mu that mixes the learner's policy pi
with a *landmine*: with probability ``contamination`` the actor plays a fixed wrong arm
(the distributed-DG paper's buggy actor). For each method, the expected update direction is

    g = sum_x sum_a mu_x(a) * w(a) * U(a) * (e_a - pi_x),

with w = 1 for PG and w = sigmoid(U * (-log pi(a)) / eta) for DG (the library's ``dg_gate``).
Two advantages: the paper's raw reward U = r (then DG's per-context weight is exactly
p/(1+p) against PG's p, p = pi(y*)), and the baselined U = r - E_mu[r], which a learned value
function approximates. Contamination only matters with a baseline: with U = r a landmine
failure has U = 0 and moves neither method.
We report 1 - cos against two references:

* the true gradient of expected reward under the clean policy (what PG estimates without
  contamination): sum_x pi_x(y*) (e_y* - pi_x);
* the cross-entropy oracle, sum_x (e_y* - pi_x), which weighs every context equally.

Sweeps: the policy improves (a logit bonus ``c`` on the correct arm grows), and the
contamination grows at a fixed policy. Seeds vary the random logits and the correct arms.

Example:
    >>> from dg_envs.experiments import bandit_geometry as bg
    >>> records = bg.run(bg.Config.quick(), progress=False)
    >>> sorted({r["method"] for r in records})
    ['DG', 'PG']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dg_envs.experiments.common import format_mean_spread, markdown_table, new_figure, write_page

NAME = "bandit-geometry"


@dataclass
class Config:
    """Settings of the exact tabular analysis."""

    single_arms: int = 100
    """Arms of the one-context bandit (the paper's K=100)."""
    multi_contexts: int = 100
    """Contexts of the many-context bandit (the paper's N=100)."""
    multi_arms: int = 10
    """Arms per context of the many-context bandit (the paper's K=10)."""
    bonuses: tuple[float, ...] = tuple(np.linspace(-2.0, 10.0, 25).round(3))
    """Logit bonus of the correct arm: the policy improves as it grows."""
    contaminations: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5)
    """Probability that the actor plays the landmine arm instead of sampling pi."""
    improvement_contaminations: tuple[float, ...] = (0.0, 0.1)
    """Contamination levels at which the policy-improvement sweep is computed (with the baseline)."""
    contamination_bonus: float = 3.0
    """Logit bonus at which the contamination sweep is computed."""
    eta: float = 1.0
    """DG temperature (1 in every experiment of the paper)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the random logits and correct arms."""

    @classmethod
    def quick(cls) -> "Config":
        """A smaller grid; the computation is exact either way."""
        return cls(bonuses=(-2.0, 0.0, 2.0, 4.0, 8.0), contaminations=(0.0, 0.1, 0.3), seeds=(0, 1, 2))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed stably."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def expected_update(
    logits: np.ndarray, correct: np.ndarray, contamination: float, method: str, eta: float = 1.0,
    baseline: bool = True,
) -> np.ndarray:
    """Exact expected update direction over all contexts, shape ``(n_contexts, n_arms)``.

    ``logits``: ``(n_contexts, n_arms)``; ``correct``: ``(n_contexts,)`` correct arms. The
    landmine of a context is the first arm that is not the correct one. Contexts are weighted
    uniformly. ``baseline``: U = r - E_mu[r] (True) or the paper's U = r (False).

    >>> g = expected_update(np.zeros((1, 2)), np.array([0]), 0.0, "PG")
    >>> g.round(3).tolist()  # pi = (1/2, 1/2): U = +-1/2, g = 1/2*1/2*(1/2,-1/2) + 1/2*(-1/2)*(-1/2,1/2)
    [[0.25, -0.25]]
    >>> g = expected_update(np.zeros((1, 2)), np.array([0]), 0.0, "DG", baseline=False)
    >>> g.round(4).tolist()  # U = r: only y* moves, weight p * sigmoid(-log p) = p/(1+p) = 1/3
    [[0.1667, -0.1667]]
    """
    from dg_envs.algos.gates import dg_gate

    n_contexts, n_arms = logits.shape
    rows = np.arange(n_contexts)
    pi = softmax(logits)
    landmine = np.where(correct == 0, 1, 0)
    mu = (1.0 - contamination) * pi
    mu[rows, landmine] += contamination
    reward = np.zeros_like(pi)
    reward[rows, correct] = 1.0
    advantage = reward - (mu * reward).sum(axis=1, keepdims=True) if baseline else reward
    if method == "PG":
        weight = np.ones_like(pi)
    elif method == "DG":
        log_pi = np.log(pi)
        weight = dg_gate(torch.as_tensor(advantage), torch.as_tensor(log_pi), eta=eta).numpy()
    else:
        raise ValueError(f"method must be 'PG' or 'DG', got {method!r}")
    coef = mu * weight * advantage  # (x, a): weight of the score e_a - pi_x
    # sum_a coef[x, a] (e_a - pi_x) = coef[x] - (sum_a coef[x, a]) pi_x
    return coef - coef.sum(axis=1, keepdims=True) * pi


def one_minus_cos(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine similarity of two flattened arrays (0 = same direction)."""
    a, b = a.ravel(), b.ravel()
    # Clipped at 0: identical directions give -1e-16 in floating point.
    return max(0.0, float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))


def _policy(rng: np.random.Generator, n_contexts: int, n_arms: int, bonus: float):
    logits = rng.standard_normal((n_contexts, n_arms))
    correct = rng.integers(n_arms, size=n_contexts)
    logits[np.arange(n_contexts), correct] += bonus
    return logits, correct


def _measure(logits, correct, contamination, eta, baseline=True) -> list[dict]:
    pi = softmax(logits)
    rows = np.arange(len(correct))
    p_correct = pi[rows, correct]
    onehot = np.zeros_like(pi)
    onehot[rows, correct] = 1.0
    true_grad = p_correct[:, None] * (onehot - pi)
    ce_grad = onehot - pi
    out = []
    for method in ("PG", "DG"):
        g = expected_update(logits, correct, contamination, method, eta, baseline)
        out.append(
            {
                "method": method,
                "error": float(1.0 - p_correct.mean()),
                "one_minus_cos_true": one_minus_cos(g, true_grad),
                "one_minus_cos_ce": one_minus_cos(g, ce_grad),
            }
        )
    return out


def run(config: Config, progress: bool = True, tensorboard_log: str | None = None,
        out_dir: Path | str = ".") -> list[dict]:
    """All sweeps, one record per (setting, sweep point, seed, method).

    Exact expectations, no training: ``progress``, ``tensorboard_log`` and ``out_dir`` are unused.
    """
    records = []
    settings = {"single": (1, config.single_arms), "multi": (config.multi_contexts, config.multi_arms)}
    for setting, (n_contexts, n_arms) in settings.items():
        for seed in config.seeds:
            for baseline, contamination in [(False, 0.0)] + [(True, c) for c in config.improvement_contaminations]:
                for bonus in config.bonuses:
                    logits, correct = _policy(np.random.default_rng(seed), n_contexts, n_arms, bonus)
                    for rec in _measure(logits, correct, contamination, config.eta, baseline):
                        records.append(dict(rec, setting=setting, sweep="improvement", seed=seed, baseline=baseline,
                                            bonus=float(bonus), contamination=contamination))
            logits, correct = _policy(np.random.default_rng(seed), n_contexts, n_arms, config.contamination_bonus)
            for contamination in config.contaminations:
                for rec in _measure(logits, correct, contamination, config.eta):
                    records.append(dict(rec, setting=setting, sweep="contamination", seed=seed, baseline=True,
                                        bonus=config.contamination_bonus, contamination=contamination))
    return records


def _select(records, **where):
    return [r for r in records if all(r[k] == v for k, v in where.items())]


def analyse(records: list[dict], out_dir: Path) -> str:
    """Write ``bandit-geometry.md`` (table) and ``bandit-geometry.png`` (figure); return the table."""
    rows = []
    for setting, metric in (("single", "one_minus_cos_true"), ("multi", "one_minus_cos_true"), ("multi", "one_minus_cos_ce")):
        for contamination in sorted({r["contamination"] for r in _select(records, sweep="contamination")}):
            cells = []
            for method in ("PG", "DG"):
                vals = [r[metric] for r in _select(records, setting=setting, sweep="contamination",
                                                   contamination=contamination, method=method)]
                cells.append(format_mean_spread(vals))
            reference = "true gradient" if metric.endswith("true") else "CE oracle"
            rows.append([setting, reference, contamination, *cells])
    table = "As contamination grows (policy at logit bonus %g, U = r - E[r]):\n\n" % records[-1]["bonus"]
    table += markdown_table(["bandit", "1 - cos to", "contamination", "PG", "DG"], rows)
    rows = []
    for baseline in (False, True):
        recs = _select(records, setting="multi", sweep="improvement", baseline=baseline, contamination=0.0)
        for bonus in sorted({r["bonus"] for r in recs})[:: max(1, len({r["bonus"] for r in recs}) // 5)]:
            at = [r for r in recs if r["bonus"] == bonus]
            error = np.mean([r["error"] for r in at])
            rows.append(["U = r" if not baseline else "U = r - E[r]", f"{error:.3g}",
                         *[format_mean_spread(r["one_minus_cos_ce"] for r in at if r["method"] == m) for m in ("PG", "DG")]])
    table += "\n\nAs the policy improves (100 contexts x 10 arms, clean data), 1 - cos to the CE oracle:\n\n"
    table += markdown_table(["advantage", "policy error 1 - pi(y*)", "PG", "DG"], rows)

    fig, axes = new_figure(ncols=3)
    panels = (("single", "one_minus_cos_true", "1 context x 100 arms: vs true gradient"),
              ("multi", "one_minus_cos_ce", "100 contexts x 10 arms: vs CE oracle"))
    for ax, (setting, metric, title) in zip(axes[:2], panels):
        variants = sorted({(r["baseline"], r["contamination"]) for r in _select(records, sweep="improvement")})
        for baseline, contamination in variants:
            for method, style in (("PG", "--"), ("DG", "-")):
                recs = _select(records, setting=setting, sweep="improvement", method=method, baseline=baseline,
                               contamination=contamination)
                bonuses = sorted({r["bonus"] for r in recs})
                err = [np.mean([r["error"] for r in recs if r["bonus"] == b]) for b in bonuses]
                val = [np.mean([r[metric] for r in recs if r["bonus"] == b]) for b in bonuses]
                label = f"{method}, U=r" if not baseline else f"{method}, U=r-E[r], contam. {contamination:g}"
                ax.plot(err, val, style, label=label)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.invert_xaxis()
        ax.set_xlabel("policy error 1 - pi(y*)  (improves to the right)")
        ax.set_ylabel("1 - cos")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    ax = axes[2]
    for setting, metric, label in (("single", "one_minus_cos_true", "1x100, vs true"), ("multi", "one_minus_cos_ce", "100x10, vs CE")):
        for method, style in (("PG", "--"), ("DG", "-")):
            recs = _select(records, setting=setting, sweep="contamination", method=method)
            eps = sorted({r["contamination"] for r in recs})
            ax.plot(eps, [np.mean([r[metric] for r in recs if r["contamination"] == e]) for e in eps], style,
                    marker="o", label=f"{method}, {label}")
    ax.set_xlabel("contamination (landmine probability)")
    ax.set_ylabel("1 - cos")
    ax.set_title("as contamination grows", fontsize=9)
    ax.legend(fontsize=7)
    return write_page(out_dir, NAME, table, fig)

