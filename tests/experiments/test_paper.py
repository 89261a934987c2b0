"""The paper-budget experiments (mnist-paper, token-reversal-paper, kondo-lengths): their methods,
the verdict rules on hand-made records, and each quick variant end to end with a threshold."""

import json
import math

import numpy as np
import pytest
import torch as th

from dg_envs.experiments import make_config, run_experiment
from dg_envs.experiments import kondo_lengths as kl
from dg_envs.experiments import mnist_paper as mp
from dg_envs.experiments import paper
from dg_envs.experiments import token_reversal_paper as trp
from dg_envs.experiments.paper import DIRECTION, HOLDS, NOT_HOLD, NOT_MEASURED, Claim, judge


def _records(out_dir, name):
    return [json.loads(line) for line in (out_dir / f"{name}.jsonl").read_text().splitlines()]


def _check_page(out_dir, name, table, records):
    assert (out_dir / f"{name}.png").stat().st_size > 10_000
    page = (out_dir / f"{name}.md").read_text()
    assert table in page and f"dg-envs experiment {name} --quick" in page and "## The papers' claims" in page
    assert all(r["seed"] == 0 and r["wall_seconds"] > 0 and "seed=0 #" in r["key"] for r in records)
    return page


# -- the methods ----------------------------------------------------------------------------------

def _tiny_mnist(**overrides):
    settings = dict(total_updates=5, batch_size=20, hidden=(16,), eval_every=0, source="offline", seeds=(0,))
    return mp.Config(**{**settings, **overrides})


def _params(model):
    return th.cat([p.detach().flatten() for p in model.policy.mlp_extractor.policy_net.parameters()]
                  + [p.detach().flatten() for p in model.policy.action_net.parameters()])


def test_pg_is_reinforce_with_the_batch_mean_baseline():
    """"PG" (DGPG, eta = inf, Adam eps 5e-9) takes REINFORCE's Adam steps: on-policy, the
    reference REINFORCE's ratio is exactly 1, so both must end at the same parameters."""
    from dg_envs.experiments.training import make_run_env

    config = _tiny_mnist(total_updates=8)
    models, initial = [], None
    for method in ("PG", "IWPG"):
        spec = mp.run_spec(config, method, lag=0, seed=3)
        model = spec.algo(spec.policy, make_run_env(spec), n_steps=1, seed=3, **spec.algo_kwargs)
        initial = _params(model)
        models.append(model.learn(8 * 20))
    assert models[0].eta == math.inf and models[0].policy.optimizer.defaults["eps"] == 5e-9
    np.testing.assert_allclose(_params(models[0]).numpy(), _params(models[1]).numpy(), atol=1e-6)
    assert (_params(models[0]) - initial).abs().max() > 1e-3  # it trained


def test_iwpg_ratio_is_exact_under_a_stale_actor():
    """A stale actor reports the exact log-prob of the snapshot that sampled, D updates old:
    the reference REINFORCE's ratio pi / mu_reported is exact importance weighting there."""
    from stable_baselines3.common.callbacks import BaseCallback

    from dg_envs.experiments.training import make_run_env

    class KeepStates(BaseCallback):
        def __init__(self):
            super().__init__()
            self.states = []

        def _on_training_start(self):
            self.states.append({k: v.clone() for k, v in self.model.policy.state_dict().items()})

        def _on_rollout_start(self):
            if self.model._n_updates == len(self.states):
                self.states.append({k: v.clone() for k, v in self.model.policy.state_dict().items()})

        def _on_step(self):
            return True

    lag, updates = 2, 6
    spec = mp.run_spec(_tiny_mnist(), "IWPG", lag=lag, seed=0)
    model = spec.algo(spec.policy, make_run_env(spec), n_steps=1, seed=0, **spec.algo_kwargs)
    keep = KeepStates()
    model.learn(updates * 20, callback=keep)
    buffer = model.rollout_buffer
    obs = th.as_tensor(buffer.observations.reshape(20, -1))
    actions = th.as_tensor(buffer.actions.reshape(-1)).long()
    reported = th.as_tensor(buffer.behavior_log_probs.reshape(-1))
    gaps = []
    for state in keep.states:  # the policy after 0, 1, ... updates
        model.policy.load_state_dict(state)
        with th.no_grad():
            gaps.append(float((model.policy.get_distribution(obs).log_prob(actions) - reported).abs().max()))
    # The last rollout came after updates - 1 updates; the actor acted with the policy `lag` older.
    assert gaps[updates - 1 - lag] < 1e-5
    assert min(g for i, g in enumerate(gaps) if i != updates - 1 - lag) > 1e-4


@pytest.mark.parametrize("method", ["DG", "sb3:DGA2C"])
def test_train_run_pushes_one_snapshot_per_update(method, monkeypatch):
    """The actor's lag is counted in updates: one snapshot at the start and one per update, not
    two (a reference method pushes its own; SnapshotCallback is only for SB3's baselines)."""
    from dg_envs.experiments.training import train_run
    from dg_envs.wrappers._policy import VectorPolicyActor

    pushes = []
    real = VectorPolicyActor.push_policy_snapshot
    monkeypatch.setattr(VectorPolicyActor, "push_policy_snapshot",
                        lambda self, actor: pushes.append(1) or real(self, actor))
    train_run(mp.run_spec(_tiny_mnist(), method, lag=2, seed=0), lambda model: 0.0)
    assert len(pushes) == 5 + 1


def test_methods_resolve_from_the_registry_and_bad_labels_name_the_setting():
    from dg_envs.algos import ALGORITHMS

    assert paper.resolve_method("Kondo 3%", paper.METHODS) == (ALGORITHMS["KondoPG"], {"keep_fraction": 0.03})
    for label in paper.METHODS:
        paper.resolve_method(label, paper.METHODS)
    with pytest.raises(ValueError, match="methods: 'SAC' has no entry in method_settings"):
        paper.check_methods(("DG", "SAC"), paper.METHODS)
    with pytest.raises(ValueError, match=r"method_settings\['X'\]: algorithm must be one of"):
        paper.resolve_method("X", {"X": {"algorithm": "SAC"}})


def test_token_run_spec_is_the_reference_launcher_shape():
    config = trp.Config()
    shape = dict(length=10, vocab_size=2, prompts=10, samples_per_prompt=10, total_updates=1000, learning_rate=3e-4,
                 transformer=config.transformer, frictions={}, seed=0)
    spec = paper.token_run_spec("DG", config.method_settings, **shape)
    assert (spec.n_envs, spec.n_steps, spec.env_kwargs["group_size"]) == (100, 10, 10)
    assert spec.algo_kwargs["group_size"] == 10
    assert spec.algo_kwargs["policy_kwargs"]["features_extractor_kwargs"]["n_layers"] == 3
    ppo = paper.token_run_spec("sb3:DGPPO", config.method_settings, **shape)
    assert (ppo.algo_kwargs["batch_size"], ppo.algo_kwargs["n_epochs"]) == (250, 4)
    assert "group_size" not in ppo.algo_kwargs


def _poisoned(algo, after: int, error: type[Exception] | None = None):
    """``algo`` whose ``train()`` number ``after`` leaves NaN parameters (or raises ``error``, parameters intact)."""

    class Poisoned(algo):
        def train(self) -> None:
            super().train()
            self.trains = getattr(self, "trains", 0) + 1
            if self.trains == after:
                if error is not None:
                    raise error("a bug, not a divergence")
                with th.no_grad():
                    next(self.policy.parameters()).fill_(float("nan"))

    return Poisoned


def _tiny_token_spec(method: str, updates: int):
    config = trp.Config()
    return paper.token_run_spec(method, config.method_settings, length=3, vocab_size=2, prompts=2,
                                samples_per_prompt=4, total_updates=updates, learning_rate=3e-4,
                                transformer=config.transformer, frictions={}, seed=0, env_kwargs={}, eval_every=1)


def test_a_diverged_token_run_is_recorded_with_sequence_error_one_not_raised(tmp_path):
    """SB3's PPO can overflow its ratio to NaN logits (token reversal, all frictions): the sweep
    records the run as diverged after the updates it completed, and goes on."""
    import dataclasses

    from dg_envs.experiments.training import train_run

    spec = _tiny_token_spec("sb3:PPO", updates=6)
    spec = dataclasses.replace(spec, algo=_poisoned(spec.algo, after=3))
    record = paper.train_token_run(spec, eval_episodes=8)
    assert record["diverged_at"] == 3  # the third update left NaN parameters
    assert record["sequence_error"] == 1.0 and record["curve"][-1] == (3, 1.0)
    assert [u for u, _ in record["curve"][:-1]] == [1, 2]  # evaluated while finite, not after
    with pytest.raises(ValueError):  # without a score for it, a divergence still raises
        train_run(spec, lambda model: 0.0)
    healthy = paper.train_token_run(_tiny_token_spec("sb3:PPO", updates=2), eval_episodes=8)
    assert "diverged_at" not in healthy
    buggy = dataclasses.replace(spec, algo=_poisoned(spec.algo.__mro__[1], after=1, error=RuntimeError))
    with pytest.raises(RuntimeError, match="a bug"):  # finite parameters: an error is a bug, not a divergence
        paper.train_token_run(buggy, eval_episodes=8)
    # The page names the diverged run and its learning curve counts it as 1.0 after it diverged.
    shape = {"length": 3, "vocab_size": 2, "prompts": 2, "samples_per_prompt": 4}
    records = [{**r, **shape, "setting": "all", "method": "sb3:PPO", "seed": seed}
               for seed, r in enumerate([record, paper.train_token_run(_tiny_token_spec("sb3:PPO", 6), 8)])]
    page = trp.analyse(records, tmp_path)
    assert "Diverged runs" in page and "sb3:PPO at all, seed 0, update 3" in page


@pytest.mark.parametrize("name, overrides, match", [
    ("mnist-paper", {"lags": (0, -1)}, "lags must be an integer >= 0"),
    ("mnist-paper", {"activation": "gelu"}, "activation must be one of"),
    ("mnist-paper", {"methods": ("DG", "DG")}, "methods must not repeat"),
    ("token-reversal-paper", {"settings": ("clean", "typo")}, "settings: 'typo' is neither"),
    ("token-reversal-paper", {"vocab_size": 1}, "vocab_size must be an integer >= 2"),
    ("kondo-lengths", {"lengths": ()}, "lengths must hold at least one"),
    ("kondo-lengths", {"solved_below": 0.0}, "solved_below"),
])
def test_bad_settings_fail_before_any_run_naming_the_setting(name, overrides, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        run_experiment(name, quick=True, seeds=1, out_dir=tmp_path, progress=False, **overrides)
    assert not (tmp_path / f"{name}.jsonl").exists()


# -- the verdict rules, on hand-made numbers ------------------------------------------------------

CLAIM = Claim("DG <= 0.5 x IWPG", "~2% vs ~8%", a="DG", b="IWPG", factor=0.5)


@pytest.mark.parametrize("dg, iwpg, verdict", [
    ([0.02, 0.03, 0.02], [0.08, 0.09, 0.07], HOLDS),               # 0.29 x: the factor reached
    ([0.06, 0.06, 0.06], [0.08, 0.09, 0.07], DIRECTION),           # better, not by 2x
    ([0.08, 0.09, 0.10], [0.08, 0.09, 0.07], NOT_HOLD),            # tie within noise
    ([0.079, 0.101, 0.06], [0.08, 0.095, 0.07], NOT_HOLD),         # mean lower, but within one s.e.
    ([0.2, 0.2, 0.2], [0.08, 0.09, 0.07], NOT_HOLD),               # worse
    ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], NOT_HOLD),                  # both perfect: no 2x to claim
    ([0.01], [0.03], HOLDS),                                       # one seed: no noise estimate
])
def test_better_verdict(dg, iwpg, verdict):
    assert judge(CLAIM, {"DG": dg, "IWPG": iwpg}).verdict == verdict


def test_better_verdict_when_higher_is_better():
    claim = Claim("DG >= 2 x PPO", "", a="DG", b="PPO", factor=2.0, higher_is_better=True)
    assert judge(claim, {"DG": [20, 20], "PPO": [8, 8]}).verdict == HOLDS
    assert judge(claim, {"DG": [12, 12], "PPO": [8, 8]}).verdict == DIRECTION
    assert judge(claim, {"DG": [8, 8], "PPO": [8, 8]}).verdict == NOT_HOLD
    assert judge(claim, {"DG": [4, 4], "PPO": [0, 0]}).verdict == HOLDS  # PPO solves nothing


def test_within_verdict_with_cost():
    claim = Claim("Kondo within 1.2 x DG at <= 5%", "", a="K", b="DG", factor=1.2, kind="within", baseline="PG",
                  cost_factor=0.05)
    costs = {"K": [30.0], "DG": [1000.0]}
    values = lambda k: {"K": k, "DG": [0.010, 0.012], "PG": [0.6, 0.6]}  # noqa: E731
    assert judge(claim, values([0.012, 0.013]), costs).verdict == HOLDS               # 1.14 x DG
    assert judge(claim, values([0.05, 0.06]), costs).verdict == DIRECTION             # 5 x DG, far from PG
    assert judge(claim, values([0.5, 0.5]), costs).verdict == NOT_HOLD                # nearer PG than DG
    assert judge(claim, values([0.012]), {"K": [100.0], "DG": [1000.0]}).verdict == NOT_HOLD  # 10% of the cost
    both_zero = {"K": [0.0, 0.001], "DG": [0.0, 0.0], "PG": [0.6]}
    assert judge(claim, both_zero, costs).verdict == DIRECTION                        # 0.0005 > 1.2 x 0
    assert judge(claim, both_zero, costs, floor=0.001).verdict == HOLDS               # within the resolution
    assert judge(claim, {"K": [0.1], "DG": [0.1]}, costs).verdict == NOT_MEASURED     # no PG runs


def _mnist_record(method, lag, seed, error):
    return {"method": method, "lag": lag, "seed": seed, "test_error": error, "curve": [[10, 0.5], [20, error]],
            "updates": 20, "batch_size": 100, "data_source": "offline", "train_images": 4000}


def test_mnist_paper_page_states_each_claims_verdict(tmp_path):
    """Hand-made records at D=1000: DG 0.02, IWPG 0.08, PG 0.9 -> both reference claims hold;
    sb3:DGA2C 0.095 vs sb3:IWPG 0.085 -> does not hold; sb3:PG missing -> not measured."""
    errors = {"PG": 0.9, "IWPG": 0.08, "DG": 0.02, "CE": 0.05, "sb3:DGA2C": 0.095, "sb3:IWPG": 0.085}
    records = [_mnist_record(m, lag, s, e + 0.002 * s) for m, e in errors.items() for lag in (0, 1000) for s in range(3)
               if not (m == "CE" and lag)]
    page = mp.analyse(records, tmp_path)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in page.splitlines() if line.startswith("| ")}
    assert "**holds**" in rows["DG <= 0.5 x IWPG"] and "**holds**" in rows["DG <= 0.1 x PG"]
    assert "**does not hold**" in rows["sb3:DGA2C <= 0.5 x sb3:IWPG"]
    assert "**not measured**" in rows["sb3:DGA2C <= 0.1 x sb3:PG"]
    assert "D=1000" in rows["DG <= 0.5 x IWPG"] and "CE (any D)" in page and "holds in direction" in page


def test_kondo_lengths_longest_solved_and_claims(tmp_path):
    """Per seed, the longest H whose error is below the threshold; the claims judged on those."""
    shape = {"Kondo 3%": 16, "DG": 16, "PMPO": 6, "PPO": 6, "REINFORCE": 2}  # the longest H each solves
    records = [{"method": m, "length": h, "seed": s, "sequence_error": 0.0 if h <= top else 0.9,
                "backward_samples": 30 if m.startswith("Kondo") else 1000, "updates": 10, "prompts": 10,
                "samples_per_prompt": 10, "vocab_size": 2, "eval_episodes": 100, "solved_below": 0.05}
               for m, top in shape.items() for h in (2, 4, 6, 8, 12, 16) for s in range(2)]
    assert kl.longest_by_method(records, 0.05) == {m: [top, top] for m, top in shape.items()}
    page = kl.analyse(records, tmp_path)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in page.splitlines() if line.startswith("| ")}
    assert "**holds**" in rows["DG solves >= 27/12 x PMPO's length"]             # 16 >= 2.25 x 6
    assert "**holds**" in rows["DG solves >= 27/5 x REINFORCE's length"]         # 16 >= 5.4 x 2
    assert "**holds in direction**" in rows["DG solves >= 27/8 x PPO's length"]  # 16 < 3.375 x 6
    assert "**holds**" in rows["Kondo 3% within 1.2 x DG's length at <= 5% of its backward samples"]


# -- the quick variants, end to end ---------------------------------------------------------------

def test_mnist_paper_quick(tmp_path):
    """Every method at D=0 and D=100 (150 steps). Chance is 0.9 test error; on-policy DG and
    the CE oracle must be far below it, and PG must collapse with the stale actor where DG does not."""
    table = run_experiment("mnist-paper", quick=True, seeds=1, out_dir=tmp_path, progress=False)
    records = _records(tmp_path, "mnist-paper")
    _check_page(tmp_path, "mnist-paper", table, records)
    config = make_config("mnist-paper", quick=True, seeds=1)
    assert len(records) == len(mp.grid(config)) == 13  # CE once: it does not depend on the lag
    error = {(r["method"], r["lag"]): r["test_error"] for r in records}
    assert error["DG", 0] < 0.3 and error["CE", 0] < 0.3
    assert error["DG", 100] < 0.5 < error["PG", 100]
    assert {r["data_source"] for r in records} <= {"offline", "idx"}
    assert all(r["updates"] == 150 and r["backward_samples"] == 150 * 100 for r in records)


def test_token_reversal_paper_quick(tmp_path):
    table = run_experiment("token-reversal-paper", quick=True, seeds=1, out_dir=tmp_path, progress=False)
    records = _records(tmp_path, "token-reversal-paper")
    _check_page(tmp_path, "token-reversal-paper", table, records)
    assert {(r["setting"], r["method"]) for r in records} == {
        (s, m) for s in ("clean", "all") for m in ("REINFORCE", "DG", "Kondo 3%", "sb3:PPO")}
    assert all(0.0 <= r["sequence_error"] <= 1.0 and r["env_steps"] == 20 * 100 * 3 for r in records)
    kept = {r["method"]: r["backward_samples"] / (20 * 300) for r in records if r["setting"] == "clean"}
    assert kept["DG"] == kept["REINFORCE"] == 1.0 and 0.02 < kept["Kondo 3%"] < 0.05
    assert "Kondo 3% within 1.2 x DG" in table
    # A random answer is wrong 7/8 of the time: after 20 updates some method is far below it
    # (sb3:PPO, 16 gradient steps per update, solves H=3 here).
    assert min(r["sequence_error"] for r in records if r["setting"] == "clean") < 0.5


def test_kondo_lengths_quick(tmp_path):
    table = run_experiment("kondo-lengths", quick=True, seeds=1, out_dir=tmp_path, progress=False)
    records = _records(tmp_path, "kondo-lengths")
    _check_page(tmp_path, "kondo-lengths", table, records)
    assert len(records) == 2 * 5
    assert "longest H solved" in table and "DG solves >= 27/8 x PPO's length" in table
    # Random answers are wrong 3/4 (H=2) and 7/8 (H=3) of the time; 60 updates of DG solve both.
    error = {(r["method"], r["length"]): r["sequence_error"] for r in records}
    assert error["DG", 2] < 0.05 and error["DG", 3] < 0.05
    assert kl.longest_by_method(records, 0.05)["DG"] == [3]
