"""The token-reversal transformer extractor: layout checks and DGPPO solving H=4, M=2."""

import time

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.vec_env import DummyVecEnv

import dg_envs  # noqa: F401
from dg_envs.algos import DGPPO, TokenTransformerExtractor
from dg_envs.algos.transformer import REFERENCE_TRANSFORMER_KWARGS, whole_answer_log_prob

ENV_ID = "dg_envs/TokenReversal-v0"


def test_recovers_tokens_and_position():
    space = spaces.MultiDiscrete([3] * 4 + [4] * 4 + [5])
    ext = TokenTransformerExtractor(space)
    obs = th.tensor([[2, 0, 1, 1, 1, 3, 3, 3, 1]])
    out = ext(preprocess_obs(obs, space))
    assert out.shape == (1, 64)
    # The feature depends on the prompt: change one prompt token, the feature changes.
    obs2 = obs.clone()
    obs2[0, 0] = 0
    assert not th.allclose(out, ext(preprocess_obs(obs2, space)))


def test_causal_answer_slots_after_position_do_not_matter():
    space = spaces.MultiDiscrete([2] * 3 + [3] * 3 + [4])
    ext = TokenTransformerExtractor(space)
    a = th.tensor([[0, 1, 1, 1, 2, 2, 1]])  # writing slot 1; slot 2 is blank
    b = th.tensor([[0, 1, 1, 1, 2, 0, 1]])  # same, with garbage in the (future) slot 2
    assert th.allclose(ext(preprocess_obs(a, space)), ext(preprocess_obs(b, space)), atol=1e-6)


def test_configures_as_the_reference_transformer():
    """egg/networks/transformers.py: embed 64, 4 heads, 3 layers, ff 128, pre-norm, no biases, no final norm.

    Same parameter count as the reference's body (token + position embeddings, 3 blocks of
    LayerNorm scale, q/k/v/out projections, LayerNorm scale, ff up/down), plus the one extra
    embedding row of our "blank" answer token; the output layer is SB3's ``action_net``.
    """
    H, M, D, F = 10, 2, 64, 128
    space = spaces.MultiDiscrete([M] * H + [M + 1] * H + [H + 1])
    ext = TokenTransformerExtractor(space, **REFERENCE_TRANSFORMER_KWARGS)
    reference = M * D + 2 * H * D + 3 * (D + 4 * D * D + D + D * F + F * D)
    assert sum(p.numel() for p in ext.parameters()) == reference + D
    assert not any("bias" in name for name, _ in ext.named_parameters())
    layers = ext.transformer.layers
    assert len(layers) == 3 and layers[0].self_attn.num_heads == 4 and layers[0].linear1.out_features == F
    assert layers[0].norm_first and layers[0].activation is th.nn.functional.relu
    assert isinstance(ext.norm, th.nn.Identity)
    obs = th.tensor([[0, 1] * 5 + [2] * 10 + [0]])
    ext(preprocess_obs(obs, space)).sum().backward()  # trains
    # The default stays as it was: biases and a final LayerNorm.
    assert isinstance(TokenTransformerExtractor(space).norm, th.nn.LayerNorm)


@pytest.mark.parametrize("nvec", [[2, 2, 3, 3, 3], [2, 2, 3, 3], [2, 2, 2, 2, 3]])
def test_layout_checked(nvec):
    if nvec == [2, 2, 3, 3, 3]:
        assert TokenTransformerExtractor(spaces.MultiDiscrete(nvec)).length == 2
    else:
        with pytest.raises(ValueError, match="MultiDiscrete"):
            TokenTransformerExtractor(spaces.MultiDiscrete(nvec))


def test_works_with_vanilla_sb3_ppo():
    env = gym.make(ENV_ID, length=3, vocab_size=2)
    kw = dict(features_extractor_class=TokenTransformerExtractor, net_arch=[])
    model = PPO("MlpPolicy", env, n_steps=12, batch_size=12, n_epochs=1, policy_kwargs=kw, device="cpu", seed=0)
    model.learn(24)


def perfect_rate(model, n=100, length=4, vocab_size=2):
    env = gym.make(ENV_ID, length=length, vocab_size=vocab_size)
    perfect = 0
    for i in range(n):
        obs, _ = env.reset(seed=10_000 + i)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, done, _, info = env.step(int(action))
        perfect += info["perfect"]
    return perfect / n


def test_dgppo_solves_token_reversal_h4_m2():
    """Random play writes a perfect answer with probability 2**-4 = 6%; require >= 90% greedy.

    Budget: < 1 min of this process's CPU time on one torch thread (CPU time, not wall
    time, so that other jobs on a shared machine cannot make it flaky).
    """
    threads = th.get_num_threads()
    th.set_num_threads(1)
    start = time.process_time()
    venv = DummyVecEnv([lambda: gym.make(ENV_ID, length=4, vocab_size=2)] * 16)
    venv.seed(0)
    model = DGPPO(
        "MlpPolicy", venv, n_steps=8, batch_size=64, n_epochs=4, learning_rate=1e-3, gamma=1.0, gae_lambda=1.0,
        policy_kwargs=dict(features_extractor_class=TokenTransformerExtractor, net_arch=[], share_features_extractor=False),
        seed=0, device="cpu",
    )
    try:
        model.learn(2048)
        assert perfect_rate(model) >= 0.9
        assert time.process_time() - start < 60
    finally:
        th.set_num_threads(threads)


# -- readout="previous" and whole answers in one pass -------------------------------------------

def random_answers(H, M, E, seed=0):
    """Raw observations ``(E, H, 2H + 1)`` of ``E`` whole answers, step by step, and their tokens."""
    rng = np.random.default_rng(seed)
    prompts, answers = rng.integers(0, M, (E, H)), rng.integers(0, M, (E, H))
    obs = np.zeros((E, H, 2 * H + 1), dtype=np.int64)
    for t in range(H):
        obs[:, t, :H] = prompts
        obs[:, t, H : 2 * H] = np.where(np.arange(H) < t, answers, M)
        obs[:, t, 2 * H] = t
    return th.as_tensor(obs), th.as_tensor(answers)


def row_by_row(fn, x):
    """``fn`` on the rows of ``x`` in reverse order, returned in the original order: reversed steps are
    never whole answers, so the extractor's one-pass path cannot kick in."""
    return fn(x.flip(0)).flip(0)


def test_readout_previous_reads_the_token_before_the_slot():
    H, M = 3, 2
    space = spaces.MultiDiscrete([M] * H + [M + 1] * H + [H + 1])
    th.manual_seed(0)
    ext = TokenTransformerExtractor(space, readout="previous")
    h, _ = ext._encode(preprocess_obs(th.tensor([[0, 1, 1, 1, 2, 2, 1]]), space))
    # (allclose: forward runs only the tokens up to the slot it reads, the sums differ in the last bits)
    assert th.allclose(ext(preprocess_obs(th.tensor([[0, 1, 1, 1, 2, 2, 1]]), space)), ext.norm(h[:, H + 1 - 1]),
                       atol=1e-6)
    # Writing slot 1 never reads the blank there (nor anything later): it is the next-token prediction.
    a, b = th.tensor([[0, 1, 1, 1, 2, 2, 1]]), th.tensor([[0, 1, 1, 1, 0, 1, 1]])
    assert th.equal(ext(preprocess_obs(a, space)), ext(preprocess_obs(b, space)))
    with pytest.raises(ValueError, match="readout must be one of 'slot', 'previous'"):
        TokenTransformerExtractor(space, readout="next")
    with pytest.raises(ValueError, match="readout='previous'"):
        TokenTransformerExtractor(space).answer_features(preprocess_obs(a, space))


def test_answer_features_equal_step_by_step_features():
    H, M, E = 5, 3, 7
    space = spaces.MultiDiscrete([M] * H + [M + 1] * H + [H + 1])
    th.manual_seed(0)
    ext = TokenTransformerExtractor(space, **REFERENCE_TRANSFORMER_KWARGS)
    obs, _ = random_answers(H, M, E)
    whole = ext.answer_features(preprocess_obs(obs[:, -1], space))
    step_by_step = row_by_row(ext, preprocess_obs(obs.reshape(E * H, -1), space)).reshape(E, H, -1)
    assert whole.shape == (E, H, 64)
    assert (whole - step_by_step).abs().max() <= 1e-5


def test_forward_on_whole_answers_runs_one_pass_per_answer(monkeypatch):
    """A batch of whole answers in step order (a whole_episodes minibatch): E passes, not E * H, same features."""
    H, M, E = 4, 2, 6
    space = spaces.MultiDiscrete([M] * H + [M + 1] * H + [H + 1])
    th.manual_seed(0)
    ext = TokenTransformerExtractor(space, **REFERENCE_TRANSFORMER_KWARGS)
    obs = preprocess_obs(random_answers(H, M, E)[0].reshape(E * H, -1), space)
    passes = []
    encode = ext._encode
    monkeypatch.setattr(ext, "_encode", lambda x, tokens=None: (passes.append(len(x)), encode(x, tokens))[1])
    assert ext.holds_whole_answers(obs)
    fast = ext(obs)
    assert passes == [E]
    slow = row_by_row(ext, obs)
    assert passes[1:] == [E * H]
    assert (fast - slow).abs().max() <= 1e-5
    # Not whole answers: a rollout step (all at one position), a cut answer, another answer's tokens, readout "slot".
    assert not ext.holds_whole_answers(obs[::H])
    assert not ext.holds_whole_answers(obs[1:-H + 1])
    mixed = obs.clone()
    mixed[H + 1] = obs[2 * H + 1]  # step 1 of answer 1 replaced by step 1 of answer 2
    assert not ext.holds_whole_answers(mixed) or bool((obs[H + 1] == obs[2 * H + 1]).all())
    assert not TokenTransformerExtractor(space).holds_whole_answers(obs)


def reference_dgpg(frictions=None, readout="previous", H=4, n_envs=20):
    from dg_envs.algos import DGPG
    from dg_envs.vec_env import make_vec_env

    venv = make_vec_env(ENV_ID, n_envs=n_envs, seed=0, env_kwargs=dict(length=H, group_size=10), frictions=frictions)
    kwargs = {**REFERENCE_TRANSFORMER_KWARGS, "readout": readout}
    return DGPG("MlpPolicy", venv, seed=0, n_steps=2 * H, policy_kwargs=dict(
        features_extractor_class=TokenTransformerExtractor, features_extractor_kwargs=kwargs, net_arch=[]))


def test_whole_answer_log_prob_equals_per_token_and_gives_the_same_gradient():
    """A rollout under a stale actor and the lying bug (every entry relabelled, landmines injected)."""
    model = reference_dgpg({"stale": {"lag": 2}, "bug": {"p": 0.3, "per": "episode"}})
    model.learn(3 * model.n_steps * model.n_envs)
    batch = model.rollout_buffer.whole()
    actions = model._policy_actions(batch.actions)
    obs = batch.observations.reshape(-1, 4, batch.observations.shape[-1])
    whole = whole_answer_log_prob(model.policy, obs, actions.reshape(-1, 4))
    assert whole is not None and whole.shape == (model.n_steps * model.n_envs,)
    per_token = row_by_row(lambda x: model._log_prob(x[:, :-1], x[:, -1]),
                           th.cat([batch.observations, actions[:, None].to(batch.observations.dtype)], 1))
    assert (whole - per_token).abs().max() <= 1e-5
    grads = []
    for log_prob in (whole, per_token):
        model.policy.zero_grad()
        model._loss(log_prob, batch).loss.backward()
        grads.append(th.cat([p.grad.flatten() for p in model.policy.parameters() if p.grad is not None]))
    assert (grads[0] - grads[1]).abs().max() <= 1e-6


def test_relabelling_every_entry_scores_whole_answers(monkeypatch):
    """Under a stale actor every entry is relabelled: the rollout policy's log-probs come one pass per answer."""
    import dg_envs.algos.transformer as transformer

    calls = []

    def spy(*args):
        calls.append(transformer_whole(*args))
        return calls[-1]

    transformer_whole = transformer.whole_answer_log_prob
    monkeypatch.setattr(transformer, "whole_answer_log_prob", spy)
    model = reference_dgpg({"stale": {"lag": 2}})
    _, callback = model._setup_learn(model.n_steps * model.n_envs, None)
    callback.on_training_start(locals(), globals())
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    buffer = model.rollout_buffer
    assert model.relabelled_fraction == 1.0
    assert len(calls) == 1 and calls[0] is not None
    obs = th.as_tensor(buffer.observations.reshape(-1, buffer.observations.shape[-1]))
    with th.no_grad():
        expected = model.policy.get_distribution(obs).log_prob(th.as_tensor(buffer.actions.reshape(-1)).long())
    assert np.abs(buffer.log_probs.reshape(-1) - expected.numpy()).max() <= 1e-5


def test_whole_answer_log_prob_declines_what_it_cannot_do():
    H, M = 4, 2
    obs, answers = random_answers(H, M, 6)
    slot = reference_dgpg(readout="slot")
    assert whole_answer_log_prob(slot.policy, obs, answers) is None
    model = reference_dgpg()
    assert whole_answer_log_prob(model.policy, obs, answers) is not None
    broken = obs.clone()
    broken[2, 1, H] = 1 - broken[2, 1, H]  # step 1 wrote another first token than the last step holds
    assert whole_answer_log_prob(model.policy, broken, answers) is None
    assert whole_answer_log_prob(model.policy, obs[:, 1:], answers[:, 1:]) is None  # not whole answers
    mlp = PPO("MlpPolicy", gym.make(ENV_ID, length=H, vocab_size=M), n_steps=8, batch_size=8)
    assert whole_answer_log_prob(mlp.policy, obs, answers) is None
