"""The reference code's algorithms as SB3 algorithms: one step on the pure loss, defaults, logs, learning, the lie."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

import dg_envs  # noqa: F401
from dg_envs.algos.group import GroupBaselineRolloutBuffer
from dg_envs.algos.losses import (
    cross_entropy_loss, dg_loss, kondo_keep, kondo_loss, pmpo_loss, ppo_loss, reinforce_loss,
)
from dg_envs.algos.reference import (
    DGPG, PMPO, CrossEntropyOracle, KondoPG, ReportedRatioPG, ReportedRatioPPO, optimal_actions,
)
from dg_envs.vec_env import make_vec_env
from dg_envs.wrappers import BuggyActor

ALGOS = [DGPG, ReportedRatioPG, ReportedRatioPPO, PMPO, KondoPG, CrossEntropyOracle]
BANDIT = "dg_envs/ContextualBandit-v0"


def bandit_venv(seed=0, n_envs=50, group_size=10):
    """5 contexts x 5 arms, groups of 10 sub-envs sharing one context per episode."""
    kwargs = dict(n_contexts=5, n_arms=5, group_size=group_size)
    return make_vec_env(BANDIT, n_envs=n_envs, seed=seed, env_kwargs=kwargs)


def bandit_accuracy(model):
    """Mean over contexts of pi(correct arm | context); random play scores 1/5."""
    env = gym.make(BANDIT, n_contexts=5, n_arms=5).unwrapped
    with th.no_grad():
        probs = model.policy.get_distribution(th.eye(5)).distribution.probs
    return float(probs[th.arange(5), th.as_tensor(np.asarray(env.correct_arms))].mean())


def make(cls, venv, **kwargs):
    return cls("MlpPolicy", venv, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16]), **kwargs)


# -- one step on the pure loss ------------------------------------------------------------------
PURE = {
    DGPG: lambda lp, b: dg_loss(lp, b.advantages, eta=1.0),
    ReportedRatioPG: lambda lp, b: reinforce_loss(lp, b.behavior_log_prob, b.advantages),
    ReportedRatioPPO: lambda lp, b: ppo_loss(lp, b.behavior_log_prob, b.advantages, 0.2),
    PMPO: lambda lp, b: pmpo_loss(lp, b.behavior_log_prob, b.advantages, 0.5, 0.1, 1e-9),
    KondoPG: lambda lp, b: kondo_loss(lp, b.advantages, keep_fraction=0.03),  # full forward, as the reference
    CrossEntropyOracle: lambda lp, b: cross_entropy_loss(lp),
}


@pytest.mark.parametrize("cls", ALGOS)
def test_train_is_one_optimizer_step_on_the_pure_loss(cls):
    """Per rollout: one Adam step whose gradient is the pure loss's on the whole buffer (value head untouched)."""
    model = make(cls, bandit_venv())
    initial = copy.deepcopy(model.policy)
    seen = {}
    optimizer, step, get = model.policy.optimizer, model.policy.optimizer.step, model.rollout_buffer.get

    def recording_step(*args, **kwargs):
        grads = [None if p.grad is None else p.grad.clone() for p in model.policy.parameters()]
        seen.setdefault("grads", []).append(grads)
        return step(*args, **kwargs)

    def recording_get(batch_size=None):
        for batch in get(batch_size):
            seen["batch"] = batch
            yield batch

    optimizer.step, model.rollout_buffer.get = recording_step, recording_get
    model.learn(50)  # one rollout of one step x 50 envs, one train()
    assert len(seen["grads"]) == 1
    batch = seen["batch"]
    assert len(batch.advantages) == 50
    actions = batch.actions.long().flatten()
    log_prob = initial.get_distribution(batch.observations).log_prob(actions)
    PURE[cls](log_prob, batch).loss.backward()
    for p, ours in zip(initial.parameters(), seen["grads"][0], strict=True):
        if p.grad is None:
            assert ours is None  # the value head: never in the loss
        else:
            assert th.allclose(ours, p.grad, atol=1e-7, rtol=1e-5), (ours - p.grad).abs().max()
    for name, p in model.policy.named_parameters():
        if name.startswith(("value_net", "mlp_extractor.value_net")):
            assert th.equal(p, dict(initial.named_parameters())[name])


@pytest.mark.parametrize("cls, kwargs", [(DGPG, {}), (KondoPG, {"keep_fraction": 0.1})])
def test_answer_surprisal_gates_every_token_by_its_answers_total(cls, kwargs):
    """surprisal="episode": the gradient is the pure loss's with each answer's -log pi on all its tokens.

    Two rollouts of two 3-token answers per sub-env (n_steps=6): the answer totals are summed
    by hand from the unshuffled rollout (entry i * 6 + t is sub-env i's step t).
    """
    venv = make_vec_env("dg_envs/TokenReversal-v0", n_envs=20, seed=0, env_kwargs=dict(length=3, group_size=10))
    model = cls("MlpPolicy", venv, seed=0, device="cpu", n_steps=6, surprisal="episode",
                policy_kwargs=dict(net_arch=[16]), **kwargs)
    initial = copy.deepcopy(model.policy)
    seen = {}
    step, whole = model.policy.optimizer.step, model.rollout_buffer.whole

    def recording_step(*args, **kwargs):
        seen["grads"] = [None if p.grad is None else p.grad.clone() for p in model.policy.parameters()]
        return step(*args, **kwargs)

    def recording_whole():
        seen["batch"] = whole()
        return seen["batch"]

    model.policy.optimizer.step, model.rollout_buffer.whole = recording_step, recording_whole
    model.learn(120)  # one rollout: 6 steps x 20 envs
    batch = seen["batch"]
    log_prob = initial.get_distribution(batch.observations).log_prob(batch.actions.long().flatten())
    answer = (-log_prob.detach()).reshape(-1, 3).sum(1).repeat_interleave(3)  # 40 answers of 3 tokens
    if cls is DGPG:
        pure = dg_loss(log_prob, batch.advantages, surprisal=answer)
    else:
        pure = kondo_loss(log_prob, batch.advantages, keep_fraction=0.1, surprisal=answer)
        kept = kondo_keep(batch.advantages, log_prob, 0.1, surprisal=answer).reshape(-1, 3)
        assert (kept.all(1) | ~kept.any(1)).all()  # answers kept or skipped whole
    pure.loss.backward()
    for p, ours in zip(initial.parameters(), seen["grads"], strict=True):
        if p.grad is not None:
            assert th.allclose(ours, p.grad, atol=1e-7, rtol=1e-5), (ours - p.grad).abs().max()


def test_surprisal_must_be_step_or_episode():
    with pytest.raises(ValueError, match="surprisal must be one of 'step', 'episode'; got 'answer'"):
        make(DGPG, bandit_venv(), surprisal="answer")


def test_optimizer_is_the_reference_adam():
    model = make(DGPG, bandit_venv())
    defaults = model.policy.optimizer.defaults
    assert isinstance(model.policy.optimizer, th.optim.Adam)
    assert (defaults["lr"], defaults["eps"], defaults["betas"]) == (3e-4, 1e-8, (0.9, 0.999))
    assert model.max_grad_norm is None and model.gamma == 1.0
    custom = DGPG("MlpPolicy", bandit_venv(), policy_kwargs=dict(optimizer_kwargs=dict(eps=1e-5)), max_grad_norm=0.5)
    assert custom.policy.optimizer.defaults["eps"] == 1e-5 and custom.max_grad_norm == 0.5


# -- defaults from the env, and errors ---------------------------------------------------------
def test_n_steps_and_group_size_default_to_the_envs():
    venv = make_vec_env("dg_envs/TokenReversal-v0", n_envs=20, seed=0, env_kwargs=dict(length=4, group_size=10))
    model = DGPG("MlpPolicy", venv, device="cpu")
    assert model.n_steps == 4 and model.group_size == 10
    assert isinstance(model.rollout_buffer, GroupBaselineRolloutBuffer) and model.rollout_buffer.group_size == 10


def test_single_envs_need_n_steps_and_group_size():
    venv = DummyVecEnv([lambda: gym.make("dg_envs/TokenReversal-v0", length=2)] * 4)
    with pytest.raises(ValueError, match="no episode_length attribute: pass n_steps"):
        DGPG("MlpPolicy", venv, group_size=2)
    with pytest.raises(ValueError, match="no group_size attribute: pass group_size"):
        DGPG("MlpPolicy", venv, n_steps=2)
    with pytest.raises(ValueError, match="group_size must divide n_envs"):
        DGPG("MlpPolicy", venv, n_steps=2, group_size=3)
    with pytest.raises(ValueError, match="group_size=2 but rollout_buffer_kwargs has group_size=4"):
        DGPG("MlpPolicy", venv, n_steps=2, group_size=2, rollout_buffer_kwargs={"group_size": 4})
    model = CrossEntropyOracle("MlpPolicy", venv, n_steps=2)  # no advantage: no group needed
    assert not isinstance(model.rollout_buffer, GroupBaselineRolloutBuffer)


def test_cut_episodes_raise():
    venv = make_vec_env("dg_envs/TokenReversal-v0", n_envs=4, seed=0, env_kwargs=dict(length=3, group_size=2))
    with pytest.raises(ValueError, match="cuts an episode"):
        DGPG("MlpPolicy", venv, n_steps=4).learn(16)


def test_save_and_load(tmp_path):
    model = make(KondoPG, bandit_venv(), keep_fraction=0.1)
    model.learn(100)
    model.save(tmp_path / "kondo")
    loaded = KondoPG.load(tmp_path / "kondo", env=bandit_venv(seed=1), device="cpu")
    assert (loaded.keep_fraction, loaded.group_size, loaded.n_steps) == (0.1, 10, 1)
    loaded.learn(100)


# -- log keys ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, kwargs, keys",
    [
        (DGPG, {}, {"gate_mean", "delight_mean", "surprisal_mean"}),
        (ReportedRatioPG, {}, {"iw_mean", "iw_max", "clip_fraction", "delight_mean"}),
        (ReportedRatioPPO, {}, {"iw_mean", "iw_max", "clip_fraction"}),
        (PMPO, {}, {"pmpo_accepted_fraction", "kl_to_sampler"}),
        (KondoPG, {"keep_fraction": 0.1}, {"delight_mean"}),
        (CrossEntropyOracle, {}, {"surprisal_mean"}),
    ],
)
def test_log_keys(cls, kwargs, keys):
    model = make(cls, bandit_venv(), **kwargs)
    model.learn(50)
    logged = {k[len("train/"):] for k in model.logger.name_to_value if k.startswith("train/")}
    assert keys | {"loss", "kondo_kept_fraction", "kondo_backward_samples", "n_updates"} <= logged
    values = model.logger.name_to_value
    if cls is KondoPG:  # k = round(0.1 * 50) = 5 (more on ties): only those through the backward pass
        assert 5 <= values["train/kondo_backward_samples"] == round(values["train/kondo_kept_fraction"] * 50) < 50
    else:
        assert (values["train/kondo_kept_fraction"], values["train/kondo_backward_samples"]) == (1.0, 50)
    if cls is DGPG:
        assert 0.0 < values["train/gate_mean"] < 1.0


# -- learning ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALGOS)
def test_learns_the_contextual_bandit(cls):
    """5 contexts x 5 arms, 50 envs in groups of 10, 200 updates at lr 1e-2 (~1 s).

    Random play scores 0.2; require pi(correct arm) >= 0.9 on average over contexts
    (observed 0.97-1.00 over seeds 0-2).
    """
    model = make(cls, bandit_venv(), learning_rate=1e-2)
    model.learn(200 * 50)
    assert bandit_accuracy(model) >= 0.9


def test_cross_entropy_oracle_reads_the_label_through_either_vec_env():
    native = bandit_venv(n_envs=4, group_size=1)
    native.reset()
    dummy = DummyVecEnv([lambda: gym.make(BANDIT, n_contexts=5, n_arms=5)] * 4)
    dummy.reset()
    for venv, first in ((native, lambda: native.get_attr("optimal_action")[0]()),
                        (dummy, lambda: [e.unwrapped.optimal_action() for e in dummy.envs])):
        labels = optimal_actions(venv)
        assert labels.shape == (4,) and labels.tolist() == list(first())
    model = CrossEntropyOracle("MlpPolicy", dummy, n_steps=3, device="cpu", seed=0)
    model.learn(12)
    obs = model.rollout_buffer.observations.reshape(-1, 5)  # one-hot contexts
    env = gym.make(BANDIT, n_contexts=5, n_arms=5).unwrapped
    assert model.rollout_buffer.actions.flatten().tolist() == [env.correct_arms[c] for c in obs.argmax(1)]


def test_cross_entropy_oracle_on_mnist():
    """The DG paper's CE oracle: 784-100-100-10 ReLU, Adam 1e-3, batch 100, on the offline digits.

    Random guessing scores 0.1; require >= 0.8 test accuracy after 150 steps (observed 0.90, ~3 s).
    """
    from dg_envs.envs.mnist import load_mnist

    venv = make_vec_env("dg_envs/MNISTBandit-v0", n_envs=100, seed=0, env_kwargs=dict(source="offline"))
    kw = dict(net_arch=dict(pi=[100, 100], vf=[]), activation_fn=th.nn.ReLU)
    model = CrossEntropyOracle("MlpPolicy", venv, learning_rate=1e-3, policy_kwargs=kw, seed=0, device="cpu")
    model.learn(100 * 150)
    images, labels = load_mnist("test", source="offline")
    with th.no_grad():
        predicted = model.policy.get_distribution(th.tensor(images)).distribution.probs.argmax(-1).numpy()
    assert (predicted == labels).mean() >= 0.8


# -- the lying bug -----------------------------------------------------------------------------
def lying_bandit(bug, p, reported_log_prob, seed=0, n_envs=20, n_arms=10, correct_arm=3):
    """A one-context bandit behind a buggy actor; one group of ``n_envs`` (the batch-mean baseline)."""
    venv = DummyVecEnv([
        lambda: BuggyActor(gym.make("dg_envs/KArmedBandit-v0", n_arms=n_arms, correct_arm=correct_arm), p=p, bug=bug,
                           reported_log_prob=reported_log_prob)
    ] * n_envs)
    venv.seed(seed)
    return venv


def update_with_report(model, batch, report):
    """The gradient ``train()`` would take on ``batch`` if the bug's entries reported ``report``."""
    injected = batch.behavior_log_prob == 0.0
    batch = batch._replace(behavior_log_prob=th.where(injected, th.full_like(batch.behavior_log_prob, report),
                                                      batch.behavior_log_prob))
    model.policy.zero_grad()
    out, _, _ = model._policy_loss(batch)
    out.loss.backward()
    return th.cat([p.grad.flatten() for p in model.policy.parameters() if p.grad is not None])


@pytest.mark.parametrize("cls", [DGPG, ReportedRatioPG, ReportedRatioPPO, PMPO, KondoPG])
def test_the_lie_moves_the_reported_ratio_updates_only(cls):
    """Landmine (arm 0 of 3; arm 2 pays) executed with p = 0.3 and reported as certain (log mu = 0).

    The reported-ratio losses put the weight ``pi(landmine) / 1`` on those samples, so the
    report changes their update; DG, Kondo and PMPO never read it (PMPO's KL term's gradient
    does not depend on mu): their update is the same whatever the actor reports.
    """
    venv = lying_bandit("landmine", 0.3, 0.0, n_arms=3, correct_arm=2)
    model = cls("MlpPolicy", venv, n_steps=1, group_size=20, seed=0, device="cpu", policy_kwargs=dict(net_arch=[]))
    model.learn(20)  # one rollout
    batch = next(model.rollout_buffer.get(None))
    landmine = batch.behavior_log_prob == 0.0
    assert landmine.any() and (batch.actions.flatten()[landmine] == 0).all()
    assert (batch.advantages[landmine] < 0).all()  # the landmine fails; others in the group succeeded
    lie, truth = update_with_report(model, batch, 0.0), update_with_report(model, batch, math.log(0.3))
    if cls in (ReportedRatioPG, ReportedRatioPPO):
        assert not th.allclose(lie, truth)
    else:
        assert th.equal(lie, truth)
    if cls is ReportedRatioPG:  # per-sample weight d loss / d log pi = -A * pi / mu_reported / N
        lp = model._log_prob(batch.observations, batch.actions.long().flatten()).detach().requires_grad_(True)
        reinforce_loss(lp, batch.behavior_log_prob, batch.advantages).loss.backward()
        weight = -lp.grad * len(lp) / batch.advantages
        assert th.allclose(weight[landmine], lp.detach()[landmine].exp())


def test_the_lie_hides_lucky_hits_from_the_reported_ratio_baselines_not_from_dg():
    """A random lying bug: half the pulls are uniform over 10 arms and reported as certain.

    The policy starts confidently wrong (pi(correct) ~ 0.002: arm 0's logit + 6); the bug's
    lucky hits of the correct arm (5% of pulls) are rare successes. DGPG's gate gives them
    weight ~1; the reported ratio gives them pi(correct) / 1 ~ 0.002, so the ratio baselines
    barely learn from them; told the truth (log mu = log 1/10) the same ratio PG learns.
    Budget 300 updates x 20 pulls, Adam 1e-2. Observed pi(correct) over seeds 0-7: DGPG
    0.29-0.36, ReportedRatioPG/PPO with the lie 0.007-0.049, ReportedRatioPG told the truth
    0.13-0.82. Required: DGPG >= 0.2, lied-to ratio methods <= 0.1, truthful ratio PG >= 0.1.
    """
    def pi_correct(cls, reported_log_prob):
        model = cls("MlpPolicy", lying_bandit("random", 0.5, reported_log_prob), n_steps=1, group_size=20,
                    learning_rate=1e-2, seed=0, device="cpu", policy_kwargs=dict(net_arch=[]))
        with th.no_grad():
            model.policy.action_net.bias[0] += 6.0
        model.learn(20 * 300)
        with th.no_grad():
            return float(model.policy.get_distribution(th.zeros(1, 1)).distribution.probs[0, 3])

    assert pi_correct(DGPG, 0.0) >= 0.2
    assert pi_correct(ReportedRatioPG, 0.0) <= 0.1
    assert pi_correct(ReportedRatioPPO, 0.0) <= 0.1
    assert pi_correct(ReportedRatioPG, None) >= 0.1  # None: the bug reports its true log-prob, log(1/10)
