"""A small decoder-style transformer features extractor for ``dg_envs/TokenReversal-v0``.

SB3 one-hot encodes the ``MultiDiscrete([M]*H + [M+1]*H + [H+1])`` observation (prompt,
answer so far with blank ``M``, position). :class:`TokenTransformerExtractor` recovers the
tokens from those one-hots, embeds the ``2H`` tokens (prompt then answer) with learned
position embeddings, runs a causally masked transformer (width 64, 2 layers, 2 heads by
default, as in the DG papers), and returns the hidden state at the answer slot being written
(index ``H + position``), which sees the whole prompt and the answer so far. CPU-trainable.

The reference code's transformer (google-deepmind/egg, ``egg/networks/transformers.py``:
embed 64, 4 heads, 3 layers, feed-forward 128, pre-norm blocks, ReLU, no biases, no final
norm, learned position embeddings, causal over prompt + answer) is
``TokenTransformerExtractor`` with :data:`REFERENCE_TRANSFORMER_KWARGS`. What still differs:
the reference predicts answer token ``k`` from the position of the token before it
(next-token prediction); here from the answer slot being written, which holds a learned
"blank" embedding (vocabulary ``M + 1``) — it sees the same tokens. SB3 adds its own output
layer (``action_net``, with a bias; the reference's has none) and a value head (unused by
:mod:`dg_envs.algos.reference`). Initialisations are PyTorch's, not Flax's.

>>> import gymnasium as gym, dg_envs
>>> from dg_envs.algos import DGPPO
>>> env = gym.make("dg_envs/TokenReversal-v0", length=4, vocab_size=2)
>>> model = DGPPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1,
...               policy_kwargs=dict(features_extractor_class=TokenTransformerExtractor, net_arch=[]))
>>> model.policy.features_extractor.features_dim
64
"""

from __future__ import annotations

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["REFERENCE_TRANSFORMER_KWARGS", "TokenTransformerExtractor"]

#: ``features_extractor_kwargs`` for the reference code's transformer (``egg/networks/transformers.py``).
REFERENCE_TRANSFORMER_KWARGS = dict(
    d_model=64, n_heads=4, n_layers=3, dim_feedforward=128, bias=False, final_norm=False
)


class TokenTransformerExtractor(BaseFeaturesExtractor):
    """Transformer features for token reversal; use as ``policy_kwargs=dict(features_extractor_class=...)``.

    :param observation_space: ``MultiDiscrete([M]*H + [M+1]*H + [H+1])``.
    :param d_model: width (features dimension), default 64.
    :param n_layers: transformer layers, default 2.
    :param n_heads: attention heads, default 2.
    :param dim_feedforward: MLP width inside each layer, default ``2 * d_model``.
    :param bias: biases in the attention, feed-forward and LayerNorm layers (default True;
        the reference has none).
    :param final_norm: a LayerNorm on the returned features (default True; the reference has none).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        dim_feedforward: int | None = None,
        bias: bool = True,
        final_norm: bool = True,
    ) -> None:
        if not isinstance(observation_space, spaces.MultiDiscrete):
            raise ValueError(f"observation_space must be MultiDiscrete, got {observation_space}")
        nvec = np.asarray(observation_space.nvec).reshape(-1)
        H = (len(nvec) - 1) // 2
        M = int(nvec[0]) if H > 0 else 0
        layout_ok = (
            H >= 1 and len(nvec) == 2 * H + 1 and (nvec[:H] == M).all()
            and (nvec[H : 2 * H] == M + 1).all() and nvec[-1] == H + 1
        )
        if not layout_ok:
            raise ValueError(f"expected MultiDiscrete([M]*H + [M+1]*H + [H+1]), got nvec={nvec.tolist()}")
        super().__init__(observation_space, features_dim=d_model)
        self.length, self.vocab_size = H, M
        self.token_embedding = nn.Embedding(M + 1, d_model)  # M tokens + blank
        self.position_embedding = nn.Parameter(th.randn(2 * H, d_model))  # as large as token embeddings: attention must find positions
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward or 2 * d_model, dropout=0.0, batch_first=True, norm_first=True, bias=bias
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model, bias=bias) if final_norm else nn.Identity()
        self.register_buffer("causal_mask", nn.Transformer.generate_square_subsequent_mask(2 * H), persistent=False)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        H, M, B = self.length, self.vocab_size, observations.shape[0]
        prompt = observations[:, : H * M].reshape(B, H, M).argmax(-1)
        answer = observations[:, H * M : H * M + H * (M + 1)].reshape(B, H, M + 1).argmax(-1)
        position = observations[:, H * M + H * (M + 1) :].argmax(-1).clamp(max=H - 1)  # H: episode over
        x = self.token_embedding(th.cat([prompt, answer], dim=1)) + self.position_embedding
        h = self.transformer(x, mask=self.causal_mask, is_causal=True)
        return self.norm(h[th.arange(B, device=h.device), H + position])
