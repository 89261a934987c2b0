"""The token-reversal transformer extractor: layout checks and DGPPO solving H=4, M=2."""

import time

import gymnasium as gym
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.vec_env import DummyVecEnv

import dg_envs  # noqa: F401
from dg_envs.algos import DGPPO, TokenTransformerExtractor
from dg_envs.algos.transformer import REFERENCE_TRANSFORMER_KWARGS

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
