"""What the paper-budget experiments share: the methods, the token-reversal run, the claims and their verdicts.

Used by ``mnist-paper``, ``token-reversal-paper`` and ``kondo-lengths``
(:mod:`~dg_envs.experiments.mnist_paper`, :mod:`~dg_envs.experiments.token_reversal_paper`,
:mod:`~dg_envs.experiments.kondo_lengths`), which run the papers' methods as their reference code
runs them (:mod:`dg_envs.algos.reference`: one Adam step per batch, group or batch-mean
baseline, no critic) beside our SB3-style algorithms, at the papers' budgets.

**Methods** are data: a record label -> ``{"algorithm": <name in dg_envs.algos.ALGORITHMS>,
**keyword arguments}`` (:data:`METHODS`). Labels of our SB3-style algorithms start with
``sb3:``. ``"PG"`` is plain REINFORCE with the group (batch-mean) baseline, no ratio, no gate,
one step per batch: :class:`~dg_envs.algos.DGPG` with ``eta = inf`` (every gate is exactly
1/2, so the gradient is exactly half REINFORCE's) and Adam's ``eps`` halved to 5e-9 (Adam's
step ``m / (sqrt(v) + eps)`` on half the gradient with half the eps is the same step, bit for
bit), so it takes REINFORCE's Adam steps with the reference's eps 1e-8.

**Claims** (:class:`Claim`) compare two methods' metric (mean over seeds) and say whether the
paper's claim *holds*, *holds in direction* or *does not hold* (:func:`judge`; the rules are
:data:`VERDICT_RULES`, printed on every page).

Example:
    >>> resolve_method("DG", METHODS)
    (<class 'dg_envs.algos.reference.DGPG'>, {})
    >>> judge(Claim("DG <= 0.5 x IWPG", "~2% vs ~8%", a="DG", b="IWPG", factor=0.5),
    ...       {"DG": [0.02, 0.03], "IWPG": [0.09, 0.08]}).verdict
    'holds'
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from dg_envs.experiments.common import format_mean_spread, markdown_table
from dg_envs.experiments.training import RunSpec

#: Record label -> ``{"algorithm": registry name, **keyword arguments}``: every method the
#: paper-budget experiments know. Each experiment's ``Config.method_settings`` holds its own
#: (a copy of these entries by default), and a label not there is refused.
METHODS: dict[str, dict[str, Any]] = {
    # The papers' methods as the reference code runs them (dg_envs.algos.reference).
    "PG": {"algorithm": "DGPG", "eta": math.inf, "policy_kwargs": {"optimizer_kwargs": {"eps": 5e-9}}},
    "IWPG": {"algorithm": "ReportedRatioPG"},
    "REINFORCE": {"algorithm": "ReportedRatioPG"},
    "PPO": {"algorithm": "ReportedRatioPPO", "clip_range": 0.2},
    "PMPO": {"algorithm": "PMPO"},
    "DG": {"algorithm": "DGPG"},
    "Kondo 3%": {"algorithm": "KondoPG", "keep_fraction": 0.03},
    "CE": {"algorithm": "CE"},
    # The reference DG with every token gated by its whole answer's surprisal (not in the
    # reference code: docs/results/README.md, token reversal under the landmine bug).
    "DG (answer)": {"algorithm": "DGPG", "surprisal": "episode"},
    # The reference DG with a sharper token gate: another way to make the gate act at this scale.
    "DG eta 0.1": {"algorithm": "DGPG", "eta": 0.1},
    "DG eta 0": {"algorithm": "DGPG", "eta": 0.0},
    # Our SB3-style algorithms (learned value baseline, GAE; PPO's family: 4 epochs of 4 minibatches
    # unless a batch_size is given, see token_run_spec).
    "sb3:PG": {"algorithm": "PG", "ent_coef": 0.0},
    "sb3:IWPG": {"algorithm": "IWPG", "ent_coef": 0.0},
    "sb3:DGA2C": {"algorithm": "DGA2C", "ent_coef": 0.0},
    "sb3:PPO": {"algorithm": "PPO", "ent_coef": 0.0, "n_epochs": 4},
    "sb3:DGPPO": {"algorithm": "DGPPO", "ent_coef": 0.0, "n_epochs": 4},
    "sb3:KondoPPO": {"algorithm": "KondoPPO", "ent_coef": 0.0, "n_epochs": 4, "keep_fraction": 0.03},
}


def method_catalogue(*labels: str) -> dict[str, dict[str, Any]]:
    """A fresh copy of :data:`METHODS`' entries for ``labels`` (a ``Config`` default).

    >>> method_catalogue("DG", "CE")
    {'DG': {'algorithm': 'DGPG'}, 'CE': {'algorithm': 'CE'}}
    """
    return {label: copy.deepcopy(METHODS[label]) for label in labels}


def resolve_method(label: str, settings: Mapping[str, Mapping[str, Any]]) -> tuple[type, dict[str, Any]]:
    """The algorithm class and keyword arguments of method ``label`` in ``settings`` (``Config.method_settings``).

    ``ValueError`` naming the setting if the label has no entry or the entry no known algorithm.
    """
    from dg_envs.algos import get_algorithm

    if label not in settings:
        raise ValueError(f"methods: {label!r} has no entry in method_settings (known: {sorted(settings)})")
    entry = dict(settings[label])
    if "algorithm" not in entry:
        raise ValueError(f"method_settings[{label!r}] must name its 'algorithm', got {entry}")
    try:
        algo = get_algorithm(entry.pop("algorithm"))
    except ValueError as error:
        raise ValueError(f"method_settings[{label!r}]: {error}") from None
    return algo, entry


def is_reference(algo: type) -> bool:
    """Whether ``algo`` is one of the reference code's methods (one step per batch, no critic)."""
    from dg_envs.algos.reference import ReferencePolicyGradient

    return issubclass(algo, ReferencePolicyGradient)


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, nested dicts merged (``policy_kwargs.optimizer_kwargs``...).

    >>> merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}})
    {'a': {'x': 1, 'y': 3}, 'b': 1}
    """
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def check_methods(methods: Sequence[str], settings: Mapping[str, Mapping[str, Any]]) -> None:
    """Every label resolves, before any run (``ValueError`` naming it otherwise)."""
    if not methods:
        raise ValueError("methods must name at least one method")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods must not repeat a label, got {list(methods)}")
    for label in methods:
        resolve_method(label, settings)


# -- token reversal, as the reference launcher runs it -------------------------------------------

def token_run_spec(
    label: str,
    method_settings: Mapping[str, Mapping[str, Any]],
    *,
    length: int,
    vocab_size: int,
    prompts: int,
    samples_per_prompt: int,
    total_updates: int,
    learning_rate: float,
    transformer: Mapping[str, Any],
    frictions: Mapping[str, Any],
    seed: int,
    env_kwargs: Mapping[str, Any] | None = None,
    eval_every: int = 0,
    tensorboard_log: str | None = None,
) -> RunSpec:
    """One token-reversal run of the reference launcher's shape, for any method.

    ``prompts x samples_per_prompt`` sub-envs, the ``samples_per_prompt`` of a group sharing a
    prompt (``group_size``), ``n_steps = length`` (each update sees every sub-env's whole
    answer once); the policy is :class:`~dg_envs.algos.transformer.TokenTransformerExtractor`
    with ``transformer`` (e.g. :data:`~dg_envs.algos.transformer.REFERENCE_TRANSFORMER_KWARGS`)
    and SB3's output layer on top; Adam at ``learning_rate``. Reference methods get the group
    baseline of the groups; SB3-style ones their own critic (value head on the same features),
    and PPO's family minibatches of a quarter of the batch's answers unless the method sets
    ``batch_size``; with ``readout="previous"`` their minibatches are whole answers
    (``whole_episodes``), which the transformer scores in one pass each.
    """
    from stable_baselines3 import PPO

    from dg_envs.algos.transformer import TokenTransformerExtractor

    algo, extra = resolve_method(label, method_settings)
    policy_kwargs = {"features_extractor_class": TokenTransformerExtractor,
                     "features_extractor_kwargs": dict(transformer), "net_arch": []}
    kwargs: dict[str, Any] = {"learning_rate": learning_rate, "policy_kwargs": policy_kwargs}
    if is_reference(algo):
        kwargs["group_size"] = samples_per_prompt
    else:
        if issubclass(algo, PPO):  # 4 minibatches per epoch of whole answers, whatever the batch
            kwargs["batch_size"] = max(prompts * samples_per_prompt // 4, 1) * length
        if transformer.get("readout") == "previous":  # minibatches of whole answers: one pass per answer
            kwargs["rollout_buffer_kwargs"] = {"whole_episodes": True}
    kwargs = merge(kwargs, extra)
    return RunSpec(algo=algo, env_id="dg_envs/TokenReversal-v0", seed=seed,
                   env_kwargs={"length": length, "vocab_size": vocab_size, **(env_kwargs or {}),
                               "group_size": samples_per_prompt},
                   total_updates=total_updates, n_envs=prompts * samples_per_prompt, n_steps=length,
                   frictions=dict(frictions), algo_kwargs=kwargs, eval_every=eval_every,
                   tensorboard_log=tensorboard_log)


def train_token_run(spec: RunSpec, eval_episodes: int) -> dict[str, Any]:
    """Train ``spec``; the record fields every token-reversal paper run has.

    ``sequence_error``: greedy, on ``eval_episodes`` clean prompts (:func:`training.sequence_error`);
    ``backward_samples``: tokens that got a backward pass, summed over updates. A run whose policy
    stopped being finite (:func:`~dg_envs.experiments.training.train_run`) is recorded, not
    raised: ``diverged_at`` (the update that left NaN parameters) and sequence error 1.0, since a policy that outputs
    NaN answers nothing.
    """
    from dg_envs.experiments.training import sequence_error, train_run

    task = {k: v for k, v in spec.env_kwargs.items() if k != "group_size"}
    result = train_run(spec, sequence_error(task, episodes=eval_episodes), diverged_score=1.0)
    diverged = {"diverged_at": result["diverged_at"]} if "diverged_at" in result else {}
    return {"sequence_error": result["final"], "curve": result["curve"], "seconds": result["seconds"],
            "train_seconds": result["train_seconds"], "backward_samples": result["backward_samples"],
            "updates": spec.total_updates, "env_steps": spec.total_updates * spec.n_envs * spec.n_steps,
            "eval_episodes": eval_episodes, **diverged}


TOKEN_FRICTIONS: dict[str, dict[str, Any]] = {
    "stale": {"stale": {"lag": 10, "random_lag": "update"}},
    "bug": {"bug": {"p": 0.1, "per": "episode"}},
    "reward": {"reward_corruption": {"p": 0.1, "mode": "coin", "per": "episode", "terminal_only": True,
                                     "spare_discoveries": False}},
    "discovery": {"discovery": {"p": 0.01, "per": "episode"}},
}
"""Each friction alone, as :func:`~dg_envs.wrappers.apply_frictions` keyword arguments, at the
PAPERS.md calibration's rates (the papers' own rates are not in the reference release): the
actor lags up to 10 updates (one lag drawn uniformly from 0..10 per update, for the whole
batch, as the reference launcher's ``uniform_delay``); 10% of answers are the all-zeros
landmine, reported as certain; 10% of rewards are a fair 0/1 coin, correct answers included
(as the reference's wrapper); 1% of answers are the correct one."""


def friction_settings(settings: Sequence[str], frictions: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Setting name -> ``apply_frictions`` keyword arguments: ``"clean"`` (none), a name of
    ``frictions`` (that one alone), ``"all"`` (every one of ``frictions`` at once).

    >>> sorted(friction_settings(("clean", "bug", "all"), TOKEN_FRICTIONS)["all"])
    ['bug', 'discovery', 'reward_corruption', 'stale']
    """
    out = {}
    for name in settings:
        if name == "clean":
            out[name] = {}
        elif name == "all":
            out[name] = {k: copy.deepcopy(v) for one in frictions.values() for k, v in one.items()}
        elif name in frictions:
            out[name] = copy.deepcopy(dict(frictions[name]))
        else:
            raise ValueError(f"settings: {name!r} is neither 'clean', 'all' nor a friction of {sorted(frictions)}")
    return out


# -- claims and verdicts --------------------------------------------------------------------------

HOLDS, DIRECTION, NOT_HOLD, NOT_MEASURED = "holds", "holds in direction", "does not hold", "not measured"

VERDICT_RULES = """\
How a verdict is reached (`dg_envs.experiments.paper.judge`), from the per-seed values of two
methods `a` and `b` (means `ma`, `mb`; `noise` = the standard error of `ma - mb`, i.e.
`sqrt(sem_a^2 + sem_b^2)`, 0 with one seed):
* "a <= f x b" (lower is better; "a >= f x b" when higher is better, e.g. a solved length):
  **holds** if `a` beats `b` by more than `noise` and `ma <= f * mb`; **holds in direction** if
  `a` beats `b` by more than `noise` but not by the factor; **does not hold** otherwise (a tie
  within noise included; two methods both at 0 error tie).
* "a within f of b at <= c x b's cost" (Kondo): **holds** if `ma <= f * mb + floor` (`floor`: the
  evaluation's resolution, one wrong answer in the evaluated ones) and `a`'s mean cost (samples
  with a backward pass) is at most `c` x `b`'s; **holds in direction** if the cost condition holds
  and `a` is closer to `b` than to the ungated baseline (`ma < (mb + m_baseline) / 2`);
  **does not hold** otherwise."""


@dataclass(frozen=True)
class Claim:
    """One headline claim of the papers, as a comparison of two methods' metric.

    ``kind="better"``: ``a``'s metric is at most ``factor`` x ``b``'s (at least, when
    ``higher_is_better``). ``kind="within"``: ``a`` is within ``factor`` of ``b`` (``a <= factor
    * b``; ``a >= b / factor`` when higher is better) at a cost of at most ``cost_factor`` x
    ``b``'s, and ``baseline`` is the ungated method that decides "in direction".
    """

    name: str
    """The claim as the page states it, e.g. ``"DG <= 0.5 x IWPG"``."""
    paper: str
    """The paper's numbers (~: read off figures) and where they come from."""
    a: str
    """Method label of the claimed better (or cheaper) method."""
    b: str
    """Method label it is compared with."""
    factor: float
    """The claimed factor."""
    kind: str = "better"
    """``"better"`` or ``"within"``."""
    higher_is_better: bool = False
    """Whether a larger metric is better (solved length) rather than worse (error)."""
    baseline: str | None = None
    """``"within"``: the ungated method ``a`` should stay closer to ``b`` than to (direction)."""
    cost_factor: float | None = None
    """``"within"``: ``a``'s cost at most this times ``b``'s (None: no cost condition)."""

    def __post_init__(self):
        if self.kind not in ("better", "within"):
            raise ValueError(f"kind must be 'better' or 'within', got {self.kind!r}")
        if not self.factor > 0:
            raise ValueError(f"factor must be > 0, got {self.factor}")
        if self.kind == "within" and self.baseline is None:
            raise ValueError("a 'within' claim needs its baseline")


class Verdict(NamedTuple):
    """The outcome of :func:`judge`: the verdict, our numbers as a table cell, and why."""

    verdict: str
    ours: str
    reason: str


def _stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for one value)."""
    arr = np.asarray(values, dtype=float)
    sem = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else 0.0
    return float(arr.mean()), sem


def better_verdict(a: Sequence[float], b: Sequence[float], factor: float,
                   higher_is_better: bool = False, names: tuple[str, str] = ("a", "b")) -> tuple[str, str]:
    """The rule for "a <= factor x b" (lower is better) or "a >= factor x b" (higher is better).

    ``names`` label ``a`` and ``b`` in the reason.

    >>> better_verdict([0.02, 0.02], [0.09, 0.08], 0.5)
    ('holds', 'a/b = 0.235 <= 0.5')
    >>> better_verdict([0.09], [0.02], 0.5, names=("DG", "PPO"))
    ('does not hold', 'PPO better by 0.07 (noise 0)')
    >>> better_verdict([0.06, 0.07], [0.09, 0.08], 0.5)[0]
    'holds in direction'
    >>> better_verdict([0.0, 0.0], [0.0, 0.0], 0.1)
    ('does not hold', 'tie within noise (difference 0, noise 0)')
    """
    name_a, name_b = names
    (ma, sa), (mb, sb) = _stats(a), _stats(b)
    noise = math.hypot(sa, sb)
    gain = ma - mb if higher_is_better else mb - ma
    ratio = ma / mb if mb else math.inf if ma else math.nan
    reached = ma >= factor * mb if higher_is_better else ma <= factor * mb
    sign = ">=" if higher_is_better else "<="
    if gain > noise and reached:
        return HOLDS, f"{name_a}/{name_b} = {ratio:.3g} {sign} {factor:g}"
    if gain > noise:
        return DIRECTION, (f"{name_a} better by {abs(gain):.3g} (noise {noise:.2g}) "
                           f"but {name_a}/{name_b} = {ratio:.3g}, not {sign} {factor:g}")
    return NOT_HOLD, (f"tie within noise (difference {abs(gain):.3g}, noise {noise:.2g})" if abs(gain) <= noise
                      else f"{name_b} better by {-gain:.3g} (noise {noise:.2g})")


def within_verdict(a: Sequence[float], b: Sequence[float], baseline: Sequence[float], factor: float,
                   cost_a: Sequence[float] | None = None, cost_b: Sequence[float] | None = None,
                   cost_factor: float | None = None, floor: float = 0.0,
                   higher_is_better: bool = False, names: tuple[str, str] = ("a", "b")) -> tuple[str, str]:
    """The rule for "a within ``factor`` of b (plus ``floor``) at <= ``cost_factor`` x b's cost".

    ``names`` label ``a`` and ``b`` in the reason.

    >>> within_verdict([0.001], [0.001], [0.5], 1.2, [30], [1000], 0.05, floor=0.001)
    ('holds', 'a/b = 1 (within 1.2x, floor 0.001); cost a/b = 0.03 <= 0.05')
    >>> within_verdict([0.1], [0.001], [0.5], 1.2, [30], [1000], 0.05)[0]
    'holds in direction'
    >>> within_verdict([0.001], [0.001], [0.5], 1.2, [300], [1000], 0.05)[0]
    'does not hold'
    """
    name_a, name_b = names
    ma, mb, mc = _stats(a)[0], _stats(b)[0], _stats(baseline)[0]
    close = ma >= mb / factor - floor if higher_is_better else ma <= factor * mb + floor
    ratio = ma / mb if mb else math.inf if ma else 1.0
    text = f"{name_a}/{name_b} = {ratio:.3g} (within {factor:g}x, floor {floor:g})"
    cheap, cost_text = True, ""
    if cost_factor is not None:
        if cost_a is None or cost_b is None:
            raise ValueError("a cost condition needs cost_a and cost_b")
        cost_ratio = _stats(cost_a)[0] / _stats(cost_b)[0]
        cheap = cost_ratio <= cost_factor
        cost_text = f"; cost {name_a}/{name_b} = {cost_ratio:.3g} {'<=' if cheap else '>'} {cost_factor:g}"
    if close and cheap:
        return HOLDS, text + cost_text
    nearer = ma - mb < mc - ma if not higher_is_better else mb - ma < ma - mc
    if cheap and nearer:
        return DIRECTION, (f"{name_a}/{name_b} = {ratio:.3g}, not within {factor:g}x, "
                           f"but nearer {name_b} than the baseline{cost_text}")
    why = "too costly" if close else f"not within {factor:g}x and not nearer {name_b} than the baseline"
    return NOT_HOLD, f"{why}: {name_a}/{name_b} = {ratio:.3g}{cost_text}"


def judge(claim: Claim, values: Mapping[str, Sequence[float]], costs: Mapping[str, Sequence[float]] | None = None,
          floor: float = 0.0, fmt: str = ".3g") -> Verdict:
    """The verdict of ``claim`` from per-seed ``values`` (and ``costs``) by method label (:data:`VERDICT_RULES`).

    A method without values gives :data:`NOT_MEASURED`.
    """
    needed = [claim.a, claim.b] + ([claim.baseline] if claim.kind == "within" else [])
    missing = [m for m in needed if not len(values.get(m, ()))]
    if missing:
        return Verdict(NOT_MEASURED, "", f"no runs of {', '.join(missing)}")
    ours = " vs ".join(f"{m} {format_mean_spread(values[m], fmt)}" for m in (claim.a, claim.b))
    if claim.kind == "better":
        verdict, reason = better_verdict(values[claim.a], values[claim.b], claim.factor, claim.higher_is_better,
                                         names=(claim.a, claim.b))
    else:
        cost_a = costs.get(claim.a) if costs else None
        cost_b = costs.get(claim.b) if costs else None
        verdict, reason = within_verdict(values[claim.a], values[claim.b], values[claim.baseline], claim.factor,
                                         cost_a, cost_b, claim.cost_factor, floor, claim.higher_is_better,
                                         names=(claim.a, claim.b))
    return Verdict(verdict, ours, reason)


def claims_table(rows: Sequence[tuple[Claim, Verdict, str]]) -> str:
    """The claims table: claim, the paper's numbers, ours, the budget, the verdict and why."""
    return markdown_table(["claim", "paper (~)", "ours (mean ± std, n seeds)", "budget", "verdict", "why"],
                          [[c.name, c.paper, v.ours, budget, f"**{v.verdict}**", v.reason] for c, v, budget in rows])
