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
``TokenTransformerExtractor`` with :data:`REFERENCE_TRANSFORMER_KWARGS`, which also predicts
answer token ``k`` from the position of the token before it, as the reference does
(``readout="previous"``: next-token prediction; the default ``"slot"`` reads the answer slot
being written, which holds a learned "blank" embedding — it sees the same tokens). SB3 adds its own output
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
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from dg_envs.validation import check_choice

__all__ = ["REFERENCE_TRANSFORMER_KWARGS", "TokenTransformerExtractor", "whole_answer_log_prob"]

#: ``features_extractor_kwargs`` for the reference code's transformer (``egg/networks/transformers.py``).
REFERENCE_TRANSFORMER_KWARGS = dict(
    d_model=64, n_heads=4, n_layers=3, dim_feedforward=128, bias=False, final_norm=False, readout="previous"
)

#: Where the features of the answer token being written are read (see :class:`TokenTransformerExtractor`).
READOUTS = ("slot", "previous")


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
    :param readout: where answer token ``t`` is predicted from: ``"slot"`` (default) the answer
        slot being written, ``H + t``, which holds the blank token; ``"previous"`` the token
        before it, ``H + t - 1`` (the reference's next-token prediction; for ``t = 0`` the last
        prompt token). Both see the prompt and the answer so far. With ``"previous"`` the
        features of all ``H`` steps of an answer come from one pass over it
        (:meth:`answer_features`), which :func:`whole_answer_log_prob` uses to train on whole
        answers ``H`` times cheaper than one pass per token.
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
        readout: str = "slot",
    ) -> None:
        readout = check_choice(readout, "readout", READOUTS)
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
        self.length, self.vocab_size, self.readout = H, M, readout
        self.token_embedding = nn.Embedding(M + 1, d_model)  # M tokens + blank
        self.position_embedding = nn.Parameter(th.randn(2 * H, d_model))  # as large as token embeddings: attention must find positions
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward or 2 * d_model, dropout=0.0, batch_first=True, norm_first=True, bias=bias
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model, bias=bias) if final_norm else nn.Identity()
        self.register_buffer("causal_mask", nn.Transformer.generate_square_subsequent_mask(2 * H), persistent=False)

    def _decode(self, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Prompt ``(B, H)``, answer so far ``(B, H)`` (blank ``M``) and position ``(B,)`` from the one-hots."""
        H, M, B = self.length, self.vocab_size, observations.shape[0]
        prompt = observations[:, : H * M].reshape(B, H, M).argmax(-1)
        answer = observations[:, H * M : H * M + H * (M + 1)].reshape(B, H, M + 1).argmax(-1)
        position = observations[:, H * M + H * (M + 1) :].argmax(-1).clamp(max=H - 1)  # H: episode over
        return prompt, answer, position

    def _encode(self, observations: th.Tensor, tokens: int | None = None) -> tuple[th.Tensor, th.Tensor]:
        """Hidden states of the first ``tokens`` (default all ``2H``) tokens ``(B, tokens, d)`` and the position being
        written ``(B,)``. Causal attention: the states of the first tokens do not depend on the others."""
        prompt, answer, position = self._decode(observations)
        n = 2 * self.length if tokens is None else tokens
        x = (self.token_embedding(th.cat([prompt, answer], dim=1)) + self.position_embedding)[:, :n]
        return self.transformer(x, mask=self.causal_mask[:n, :n], is_causal=True), position

    def holds_whole_answers(self, observations: th.Tensor) -> bool:
        """Whether the rows are whole answers in step order: each block of ``H`` rows is one answer's steps 0..H-1.

        That is, row ``t`` of a block is at position ``t`` and holds the block's prompt and the
        first ``t`` tokens of the block's last row, blanks after. Always False with ``readout="slot"``.
        """
        H, M, B = self.length, self.vocab_size, observations.shape[0]
        if self.readout != "previous" or B == 0 or B % H:
            return False
        prompt, answer, position = self._decode(observations)
        steps = th.arange(H, device=observations.device)
        if not bool((position.reshape(-1, H) == steps).all()):  # a rollout step's batch stops here
            return False
        prompt, answer = prompt.reshape(-1, H, H), answer.reshape(-1, H, H)
        written = steps[:, None] > steps[None, :]  # (step t, slot j): slot j < t is written at step t
        expected = th.where(written, answer[:, -1:, :], th.full_like(answer, M))
        return bool((prompt == prompt[:, -1:]).all() and (answer == expected).all())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        if self.holds_whole_answers(observations):
            # Whole answers (an update's minibatch of whole episodes, ``whole_episodes=True``):
            # one pass per answer instead of one per token, the same features.
            last = observations.reshape(-1, self.length, observations.shape[-1])[:, -1]
            return self.answer_features(last).reshape(-1, self.features_dim)
        position = observations[:, -(self.length + 1) :].argmax(-1).clamp(max=self.length - 1)
        slot = self.length + position - int(self.readout == "previous")
        # Only the tokens up to the last slot read: early in an answer (a rollout step) that is
        # H + 1 of the 2H tokens, and nothing after them can change the result.
        h, _ = self._encode(observations, tokens=int(slot.max()) + 1 if len(slot) else None)
        return self.norm(h[th.arange(len(h), device=h.device), slot])

    def answer_features(self, observations: th.Tensor) -> th.Tensor:
        """Features of every step of whole answers from one pass each: ``(B, H, d)``.

        ``observations``: preprocessed (one-hot) observations of each answer's *last* step
        (position ``H - 1``: the prompt and the first ``H - 1`` answer tokens). Row ``t`` equals
        :meth:`forward` on that answer's step-``t`` observation (causal attention: the hidden
        state at ``H + t - 1`` sees only the prompt and the first ``t`` answer tokens). Needs
        ``readout="previous"``.
        """
        if self.readout != "previous":
            raise ValueError(f"answer_features needs readout='previous', this extractor has readout={self.readout!r}")
        h, _ = self._encode(observations)
        return self.norm(h[:, self.length - 1 : 2 * self.length - 1])


def whole_answer_log_prob(policy: ActorCriticPolicy, observations: th.Tensor, actions: th.Tensor) -> th.Tensor | None:
    """``log pi(a_t | s_t)`` of every step of whole answers, one transformer pass per answer; None where it does not apply.

    SB3 stores one sample per answer token, so evaluating a rollout runs the ``2H``-token
    transformer once per token. With ``readout="previous"`` (next-token prediction, as the
    reference) one pass over an answer's last observation gives all ``H`` steps' features
    (:meth:`TokenTransformerExtractor.answer_features`): ``H`` times fewer passes, the same
    log-probabilities (to float rounding) and gradient.

    :param policy: an SB3 ``ActorCriticPolicy``.
    :param observations: raw (not one-hot) observations ``(E, H, 2H + 1)``: ``E`` whole answers,
        in step order.
    :param actions: ``(E, H)`` the actions to score (e.g. the executed tokens).
    :return: ``(E * H,)`` log-probabilities in the order of ``observations.reshape(E * H, -1)``,
        or None when the policy's extractor is not a :class:`TokenTransformerExtractor` with
        ``readout="previous"``, or the rows are not whole answers (each row's step ``t`` at
        position ``t``, holding the prompt and the first ``t`` tokens of the row's last step);
        the caller then evaluates step by step.
    """
    extractor = getattr(policy, "pi_features_extractor", None)
    if (not isinstance(extractor, TokenTransformerExtractor) or extractor.readout != "previous"
            or not isinstance(policy.action_space, spaces.Discrete)):
        return None
    H, M = extractor.length, extractor.vocab_size
    if observations.ndim != 3 or observations.shape[1:] != (H, 2 * H + 1) or actions.shape != observations.shape[:2]:
        return None
    obs, last = observations.long(), observations[:, -1].long()
    steps = th.arange(H, device=obs.device)
    # What step t of an answer must hold: its prompt, its first t tokens, blanks after, position t.
    written = steps[None, :, None] > steps[None, None, :]  # (1, t, slot): slot j < t is written
    answer = th.where(written, last[:, None, H : 2 * H], th.full_like(obs[..., H : 2 * H], M))
    whole = (
        (obs[..., :H] == last[:, None, :H]).all()
        and (obs[..., H : 2 * H] == answer).all()
        and (obs[..., 2 * H] == steps).all()
    )
    if not whole:
        return None
    features = extractor.answer_features(preprocess_obs(last, policy.observation_space))  # (E, H, d)
    logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
    distribution = policy.action_dist.proba_distribution(action_logits=logits.reshape(-1, logits.shape[-1]))
    return distribution.log_prob(actions.reshape(-1))
