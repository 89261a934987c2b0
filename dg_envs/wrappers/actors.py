"""Actors: copies of the learner's policy that friction wrappers act with.

:class:`~dg_envs.wrappers.StaleActor` and :class:`~dg_envs.wrappers.MismatchedActor` do not
act with the learner's action: they sample their own, from a *snapshot* of the learner's
policy (``lag`` updates old, or with noise on its logits). The learner pushes a snapshot
after each update. This module is the contract between the wrappers and the learners:

* :class:`Actor` — anything callable as ``actor(obs_batch, rng, noise_std=0.0) ->
  (actions, log_probs)``; the wrappers depend on nothing else (not on SB3).
* :class:`SB3PolicyActor` — an :class:`Actor` built from a Stable-Baselines3 policy
  (a cheap, picklable CPU copy without the optimizer).
* :class:`PolicySnapshotStore` — a ring of snapshots indexed by lag.
* :func:`push_policy_snapshot` — push one copy of a policy to the policy-driven wrappers of an
  SB3 VecEnv, a Gymnasium vector env (one snapshot for all sub-envs) or one gym env.
* :class:`SnapshotCallback` — does that for vanilla SB3 algorithms, after every update.

Lag is counted in learner updates: one push per update (``train()`` call), plus one at the
start of training, so ``store.get(0)`` is the current policy and ``store.get(D)`` the policy
``D`` updates ago.

Example:
    >>> import numpy as np
    >>> import gymnasium as gym
    >>> from stable_baselines3 import PPO
    >>> env = gym.make("CartPole-v1")
    >>> model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0, device="cpu")
    >>> actor = SB3PolicyActor(model.policy)
    >>> actions, log_probs = actor(np.zeros((3, 4), dtype=np.float32), np.random.default_rng(0))
    >>> actions.shape, log_probs.shape, bool(np.all(log_probs <= 0))
    ((3,), (3,), True)
    >>> store = PolicySnapshotStore(max_size=2)
    >>> store.push(actor)
    >>> store.get(lag=5) is actor, store.num_updates
    (True, 1)
"""

from __future__ import annotations

import copy
import weakref
from collections import deque
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dg_envs.validation import check_int

__all__ = [
    "Actor",
    "SB3PolicyActor",
    "PolicySnapshotStore",
    "SnapshotCallback",
    "push_policy_snapshot",
    "PolicyOracle",
]


@runtime_checkable
class Actor(Protocol):
    """A policy the friction wrappers can sample from.

    ``actor(obs, rng, noise_std=0.0)`` takes a *batch* of observations (leading batch
    dimension, as the env's observation space gives them, stacked), samples one action per
    observation using only ``rng`` (a ``numpy.random.Generator``), and returns
    ``(actions, log_probs)``:

    * ``actions``: ``np.ndarray`` of shape ``(batch, *action_space.shape)``, in the action
      space's dtype (integers for Discrete / MultiDiscrete, shifted by the space's ``start``). Box actions are the raw sample
      (not clipped to the bounds), as SB3 stores its own actions.
    * ``log_probs``: ``np.ndarray`` of shape ``(batch,)``, float64, the log-probability
      (log-density for Box, summed over dimensions) of each action under the distribution it
      was sampled from.

    ``noise_std > 0`` perturbs the distribution before sampling (the mismatched actor):
    i.i.d. Gaussian noise of that std on the logits (Discrete / MultiDiscrete / MultiBinary)
    or on the mean (Box); the returned log-probs are under the perturbed distribution.

    Optionally, an actor also takes ``logit_bias=`` (a float array of shape ``(width,)``: the
    logits of one observation, MultiDiscrete components concatenated, or the flattened Box
    mean), added to every row's logits / mean before sampling, the log-probs again under the
    biased distribution. Only a mismatched actor with ``noise="fixed_bias"`` passes it, and it
    rejects, at the push, an actor whose ``__call__`` does not accept it.
    """

    def __call__(
        self, obs: np.ndarray, rng: np.random.Generator, noise_std: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]: ...


def _sample_categorical(logits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-CDF sampling from rows of ``logits`` (batch, n); returns (actions, log_probs)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    cdf = np.cumsum(weights, axis=-1)  # unnormalised: its last column is the partition function
    total = cdf[:, -1:]
    actions = np.minimum((cdf < rng.random((logits.shape[0], 1)) * total).sum(axis=-1), logits.shape[-1] - 1)
    rows = np.arange(logits.shape[0])
    return actions.astype(np.int64), shifted[rows, actions] - np.log(total[:, 0])


def _has_standard_heads(policy: Any) -> bool:
    """Whether ``policy`` computes its distribution exactly as SB3's ``ActorCriticPolicy`` does."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    cls = type(policy)
    return isinstance(policy, ActorCriticPolicy) and all(
        getattr(cls, name) is getattr(ActorCriticPolicy, name)
        for name in ("get_distribution", "_get_action_dist_from_latent", "extract_features")
    )


def _numpy_head(policy: Any) -> list[tuple[np.ndarray, np.ndarray, str]] | None:
    """The policy's actor as numpy layers ``(W^T, b, activation)``, or None if not a plain MLP.

    A torch forward costs ~100-300 us whatever the batch (the actor runs on batches of one
    inside per-env wrappers); the same MLP in numpy costs ~7-17 us (64x64, CartPole to
    HalfCheetah sizes). Only the standard SB3 layout
    qualifies: a ``FlattenExtractor`` on a non-image Box, a Discrete or a MultiDiscrete observation
    (see :func:`_numpy_encoder`), ``mlp_extractor.policy_net``
    made of ``Linear``/``Tanh``/``ReLU``/``Identity`` and a ``Linear`` ``action_net``. Anything
    else (CNNs, dict observations, custom extractors) keeps the torch path.
    """
    import torch as th
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space
    from stable_baselines3.common.torch_layers import FlattenExtractor
    from torch import nn

    extractor = getattr(policy, "pi_features_extractor", getattr(policy, "features_extractor", None))
    space = policy.observation_space
    if type(extractor) is not FlattenExtractor or _numpy_encoder(space) is None:
        return None
    if isinstance(space, spaces.Box) and is_image_space(space, check_channels=False) and getattr(policy, "normalize_images", False):
        return None
    policy_net = getattr(getattr(policy, "mlp_extractor", None), "policy_net", None)
    action_net = getattr(policy, "action_net", None)
    if not isinstance(policy_net, nn.Sequential) or not isinstance(action_net, nn.Linear):
        return None
    activations = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.Identity: "identity"}
    layers: list[tuple[np.ndarray, np.ndarray, str]] = []
    for module in [*policy_net, action_net]:
        if isinstance(module, nn.Linear):
            if module.weight.dtype != th.float32 or module.weight.device.type != "cpu":
                return None
            # Views on the snapshot's own (frozen, CPU) tensors: no second copy of the weights.
            weight = module.weight.detach().numpy().T
            bias = module.bias.detach().numpy() if module.bias is not None else np.zeros(weight.shape[1], np.float32)
            layers.append((weight, bias, "identity"))
        elif type(module) is nn.Identity:
            continue
        elif type(module) in activations and layers and layers[-1][2] == "identity":
            weight, bias, _ = layers[-1]
            layers[-1] = (weight, bias, activations[type(module)])
        else:
            return None
    return layers


def _numpy_encoder(space: Any) -> Any:
    """A numpy version of SB3's ``preprocess_obs`` for ``space`` (batch -> float32 matrix), or None.

    Box: the values, flattened. Discrete / MultiDiscrete (with ``start`` 0: SB3 one-hot encodes
    the raw value): the concatenated one-hot codes, built with one indexed write instead of
    SB3's one ``one_hot`` call per dimension (21 calls for token reversal's observation).

    >>> from gymnasium import spaces
    >>> _numpy_encoder(spaces.MultiDiscrete([2, 3]))(np.array([[1, 2], [0, 0]]))
    array([[0., 1., 0., 0., 1.],
           [1., 0., 1., 0., 0.]], dtype=float32)
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        size = int(np.prod(space.shape))
        return lambda obs: np.asarray(obs, dtype=np.float32).reshape(-1, size)
    if isinstance(space, spaces.Discrete) and space.start == 0:
        nvec = np.array([space.n], dtype=np.int64)
    elif isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1 and not np.any(space.start):
        nvec = space.nvec.astype(np.int64)
    else:
        return None
    offsets, total = np.concatenate([[0], np.cumsum(nvec)[:-1]]), int(nvec.sum())

    def one_hot(obs: np.ndarray) -> np.ndarray:
        index = np.asarray(obs, dtype=np.int64).reshape(-1, len(nvec)) + offsets
        codes = np.zeros((len(index), total), dtype=np.float32)
        index += np.arange(0, codes.size, total)[:, None]  # flat positions: one write for the batch
        codes.reshape(-1)[index] = 1.0
        return codes

    return one_hot


def _numpy_forward(layers: list[tuple[np.ndarray, np.ndarray, str]], x: np.ndarray) -> np.ndarray:
    """The actor's distribution parameters (logits, or the Gaussian mean) for an encoded batch, in float64."""
    for weight, bias, activation in layers:
        x = x @ weight + bias
        if activation == "tanh":
            np.tanh(x, out=x)
        elif activation == "relu":
            np.maximum(x, 0.0, out=x)
    return x.astype(np.float64)


class SB3PolicyActor:
    """An :class:`Actor` from a Stable-Baselines3 policy (``ActorCriticPolicy`` and friends).

    Holds a CPU deep copy of ``policy`` taken at construction (later updates of the learner do
    not change it), actor only: without the optimizer and its state and without the critic
    (``value_net`` and the value branch are ``None`` in the copy), gradients off. The MNIST
    policy (784-100-100-10 actor) costs ~0.36 MB a snapshot, so 1000 snapshots ~0.36 GB. It pickles (so it
    crosses ``SubprocVecEnv`` pipes). Observations go through the policy's own preprocessing
    (``policy.obs_to_tensor`` then ``policy.get_distribution``) under ``torch.no_grad()``;
    sampling uses only the numpy ``rng`` on the distribution parameters the policy computes,
    never torch's global RNG. For a plain ``ActorCriticPolicy`` (methods not overridden) the
    distribution parameters are computed from the same modules ``get_distribution`` uses
    (features, ``mlp_extractor.forward_actor``, ``action_net``, ``log_std``) without building
    torch distribution objects, which halves the cost of a call; subclasses go through
    ``get_distribution``. When those modules are a plain MLP (``FlattenExtractor`` on a
    non-image Box, Discrete or MultiDiscrete observation, ``Linear`` layers with Tanh/ReLU, SB3's ``MlpPolicy``), the same
    arithmetic runs in numpy on views of the snapshot's weights (no extra memory): measured on
    a 2-core CPU, a whole call (forward + sampling, batch of one, 64x64 MlpPolicy) costs ~25 us
    instead of ~140-170 us through torch, and no torch thread pool runs in the env's hot loop.

    Supported distributions: Categorical (Discrete), MultiCategorical (MultiDiscrete),
    Bernoulli (MultiBinary) and DiagGaussian (Box, not squashed, no gSDE). Others raise
    ``NotImplementedError`` at construction.

    ``quantize_bits``: the reference code's optional actor quantisation. Each parameter tensor
    of the copy is rounded to ``2**quantize_bits`` evenly spaced levels between its minimum and
    maximum (per-tensor affine quantisation, stored back as float32), so the actor acts with a
    coarser policy than the learner's; the reported log-probs are those of the quantised policy
    (the one that acted).

    Args:
        policy: an SB3 ``BasePolicy`` whose ``get_distribution(obs)`` returns one of the above.
        quantize_bits: None (exact copy) or an integer in 1..16.
    """

    def __init__(self, policy: Any, quantize_bits: int | None = None) -> None:
        quantize_bits = _check_quantize_bits(quantize_bits)
        from stable_baselines3.common.policies import BasePolicy

        if not isinstance(policy, BasePolicy):
            raise TypeError(f"policy must be a Stable-Baselines3 policy (e.g. model.policy), got {policy!r}")
        from stable_baselines3.common.distributions import (
            BernoulliDistribution,
            CategoricalDistribution,
            DiagGaussianDistribution,
            MultiCategoricalDistribution,
            SquashedDiagGaussianDistribution,
            StateDependentNoiseDistribution,
        )

        dist = getattr(policy, "action_dist", None)
        supported = (CategoricalDistribution, MultiCategoricalDistribution, BernoulliDistribution, DiagGaussianDistribution)
        if not isinstance(dist, supported) or isinstance(dist, (SquashedDiagGaussianDistribution, StateDependentNoiseDistribution)):
            raise NotImplementedError(
                f"SB3PolicyActor supports policies with Categorical, MultiCategorical, Bernoulli or "
                f"DiagGaussian action distributions, got {type(dist).__name__}"
            )
        # The memo maps what must not be copied to None: the optimizer (and its large state),
        # the distribution of the last forward pass (non-leaf tensors: deepcopy refuses them),
        # and the critic (value head, its MLP branch, an unshared value feature extractor):
        # acting never needs it, and it is half of an ActorCriticPolicy's parameters.
        skipped = [getattr(policy, "optimizer", None), getattr(dist, "distribution", None)]
        skipped += [getattr(policy, "value_net", None), getattr(getattr(policy, "mlp_extractor", None), "value_net", None)]
        vf_extractor = getattr(policy, "vf_features_extractor", None)
        if vf_extractor is not None and vf_extractor is not getattr(policy, "pi_features_extractor", None):
            skipped.append(vf_extractor)
        memo: dict[int, Any] = {id(obj): None for obj in skipped if obj is not None}
        # The spaces are shared, not copied: acting never changes them, and copying their
        # random generators is a quarter of the copy's cost (a snapshot is taken every update).
        for space in (policy.observation_space, policy.action_space):
            memo[id(space)] = space
        snapshot = copy.deepcopy(policy, memo)
        snapshot = snapshot.to("cpu")
        snapshot.set_training_mode(False)
        for param in snapshot.parameters():
            param.requires_grad_(False)
        self.quantize_bits = quantize_bits
        if quantize_bits is not None:
            _quantize_(snapshot, quantize_bits)
        self.policy = snapshot
        self.observation_space = policy.observation_space
        self.action_space = policy.action_space
        self._kind = type(dist).__name__
        self._nvec = list(dist.action_dims) if isinstance(dist, MultiCategoricalDistribution) else []
        self._fast = _has_standard_heads(snapshot)
        self._layers = _numpy_head(snapshot) if self._fast else None
        self._encode = _numpy_encoder(self.observation_space) if self._layers is not None else None
        # SB3 indexes categories from 0; a space's ``start`` shifts them back into the space.
        self._start = np.asarray(getattr(self.action_space, "start", 0), dtype=np.int64)

    def __call__(
        self, obs: np.ndarray, rng: np.random.Generator, noise_std: float = 0.0, logit_bias: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        params = self._distribution_params(obs)
        if logit_bias is not None:  # a fixed bias (the reference's logit_noise.py), the same for every row
            params = self._add_bias(params, logit_bias)
        if self._kind == "DiagGaussianDistribution":
            mean, std = params
        elif self._kind == "MultiCategoricalDistribution":
            logits = np.split(params, np.cumsum(self._nvec)[:-1], axis=1) if isinstance(params, np.ndarray) else params
        else:
            logits = params

        if self._kind == "CategoricalDistribution":
            if noise_std > 0:
                logits = logits + noise_std * rng.standard_normal(logits.shape)
            actions, log_probs = _sample_categorical(logits, rng)
            return actions + self._start, log_probs
        if self._kind == "MultiCategoricalDistribution":
            actions, log_probs = [], 0.0
            for component in logits:
                if noise_std > 0:
                    component = component + noise_std * rng.standard_normal(component.shape)
                a, lp = _sample_categorical(component, rng)
                actions.append(a)
                log_probs = log_probs + lp
            return np.stack(actions, axis=1) + self._start, np.asarray(log_probs, dtype=np.float64)
        if self._kind == "BernoulliDistribution":
            if noise_std > 0:
                logits = logits + noise_std * rng.standard_normal(logits.shape)
            p_one = 1.0 / (1.0 + np.exp(-logits))
            actions = (rng.random(logits.shape) < p_one).astype(self.action_space.dtype)
            # log sigmoid(+-logit), computed stably
            signed = np.where(actions == 1, logits, -logits)
            log_probs = -np.logaddexp(0.0, -signed)
            return actions, log_probs.reshape(len(actions), -1).sum(axis=1)
        # DiagGaussian
        if noise_std > 0:
            mean = mean + noise_std * rng.standard_normal(mean.shape)
        eps = rng.standard_normal(mean.shape)
        actions = mean + std * eps
        log_probs = (-0.5 * eps**2 - np.log(std) - 0.5 * np.log(2 * np.pi)).reshape(len(mean), -1).sum(axis=1)
        return actions.astype(self.action_space.dtype), log_probs

    def _add_bias(self, params: Any, logit_bias: Any) -> Any:
        """``params`` (as :meth:`_distribution_params` gives them) with ``logit_bias`` added to the logits / mean."""
        bias = np.asarray(logit_bias, dtype=np.float64)
        if self._kind == "DiagGaussianDistribution":
            mean, std = params
            width = mean.shape[-1]
        elif isinstance(params, list):  # MultiDiscrete through get_distribution: one array per component
            width = sum(self._nvec)
        else:
            width = params.shape[-1]
        if bias.shape != (width,):
            raise ValueError(f"logit_bias must have shape ({width},) for {self!r}, got {bias.shape}")
        if self._kind == "DiagGaussianDistribution":
            return mean + bias, std
        if isinstance(params, list):
            return [component + part for component, part in zip(params, np.split(bias, np.cumsum(self._nvec)[:-1]), strict=True)]
        return params + bias

    def _distribution_params(self, obs: Any) -> Any:
        """Logits (float64, MultiDiscrete: concatenated or a list) or ``(mean, std)`` for a batch."""
        if self._layers is not None:  # plain MLP: the same arithmetic in numpy, ~10x cheaper
            params = _numpy_forward(self._layers, self._encode(obs))
            if self._kind == "DiagGaussianDistribution":
                return params, np.broadcast_to(np.exp(self.policy.log_std.numpy().astype(np.float64)), params.shape)
            return params
        import torch as th

        policy = self.policy
        with th.no_grad():
            obs_tensor, _ = policy.obs_to_tensor(obs)
            if self._fast:
                # What ActorCriticPolicy.get_distribution computes, without building torch
                # distributions (their argument validation and normalisation cost ~150 us a call).
                features = policy.extract_features(obs_tensor, policy.pi_features_extractor)
                params = policy.action_net(policy.mlp_extractor.forward_actor(features)).numpy().astype(np.float64)
                if self._kind == "DiagGaussianDistribution":
                    return params, np.broadcast_to(np.exp(policy.log_std.numpy().astype(np.float64)), params.shape)
                return params
            dist = policy.get_distribution(obs_tensor).distribution
            if self._kind == "DiagGaussianDistribution":
                return dist.mean.numpy().astype(np.float64), dist.stddev.numpy().astype(np.float64)
            if self._kind == "MultiCategoricalDistribution":
                return [d.logits.numpy().astype(np.float64) for d in dist]
            return dist.logits.numpy().astype(np.float64)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_layers"] = state["_encode"] = None  # numpy views on the tensors, a closure: rebuilt after unpickling
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._layers = _numpy_head(self.policy) if self._fast else None
        self._encode = _numpy_encoder(self.observation_space) if self._layers is not None else None

    def __repr__(self) -> str:
        return f"SB3PolicyActor({self._kind}, {self.action_space})"


class PolicySnapshotStore:
    """A ring of the last ``max_size`` policy snapshots, indexed by lag.

    ``push(actor)`` after every learner update (and once before the first); ``get(0)`` is the
    newest snapshot, ``get(lag)`` the one pushed ``lag`` pushes earlier, or the oldest still
    held when fewer are available; ``get`` returns ``None`` before any push.
    ``num_updates`` counts every push ever made (not only those still held).

    Example:
        >>> store = PolicySnapshotStore(max_size=3)
        >>> for name in "abcd":
        ...     store.push(name)
        >>> store.get(0), store.get(2), store.get(10), store.num_updates, len(store)
        ('d', 'b', 'b', 4, 3)
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = check_int(max_size, "max_size", low=1)
        self._ring: deque[Actor] = deque(maxlen=self.max_size)
        self.num_updates = 0

    def push(self, actor: Actor) -> None:
        self._ring.append(actor)
        self.num_updates += 1

    def get(self, lag: int = 0) -> Actor | None:
        if not self._ring:
            return None
        if lag < 0:
            raise ValueError(f"lag must be >= 0, got {lag!r}")
        return self._ring[max(len(self._ring) - 1 - int(lag), 0)]

    def __len__(self) -> int:
        return len(self._ring)


# VecEnvs whose envs have no policy-driven wrapper, so that pushing costs one dict look-up.
_HAS_PUSH_CACHE: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


def _check_quantize_bits(quantize_bits: Any) -> int | None:
    if quantize_bits is None:
        return None
    message = f"quantize_bits must be None or an integer in 1..16, got {quantize_bits!r}"
    try:
        bits = check_int(quantize_bits, "quantize_bits", low=1)
    except ValueError:
        raise ValueError(message) from None
    if bits > 16:
        raise ValueError(message)
    return bits


def _quantize_(module: Any, bits: int) -> None:
    """Round every parameter of ``module`` in place to ``2**bits`` levels spanning its range."""
    import torch as th

    levels = 2**bits - 1
    with th.no_grad():
        for param in module.parameters():
            low, high = param.min(), param.max()
            scale = (high - low) / levels
            if scale > 0:
                param.copy_(th.round((param - low) / scale) * scale + low)


def _check_takes_logit_bias(actor: Any, where: str) -> None:
    """Raise a ``TypeError`` unless ``actor`` can be called with ``logit_bias=`` (a ``noise="fixed_bias"`` actor needs it)."""
    import inspect

    try:
        parameters = inspect.signature(actor).parameters.values()
    except (TypeError, ValueError):  # no signature to read: the call will tell
        return
    if not any(p.name == "logit_bias" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        raise TypeError(
            f"{where} with noise='fixed_bias' calls its actor with logit_bias=, which {actor!r} does not accept: "
            f"push an SB3 policy (or SB3PolicyActor), or an Actor taking logit_bias"
        )


def _check_policy(policy: Any, name: str = "policy") -> None:
    """Raise a ``TypeError`` unless ``policy`` is an SB3 policy or an :class:`Actor`."""
    if not (hasattr(policy, "get_distribution") or callable(policy)):
        hint = f" (an SB3 model? pass {name}=model.policy)" if hasattr(policy, "policy") else ""
        raise TypeError(
            f"{name} must be a Stable-Baselines3 policy (e.g. model.policy) or an Actor "
            f"(callable actor(obs, rng, noise_std=0.0) -> (actions, log_probs)), got {policy!r}{hint}"
        )


def _as_actor(policy: Any, quantize_bits: int | None = None, name: str = "policy") -> Actor:
    """``policy`` as an :class:`Actor`: an SB3 policy is copied into an :class:`SB3PolicyActor`."""
    if isinstance(policy, SB3PolicyActor) or not hasattr(policy, "get_distribution"):
        _check_policy(policy, name)
        if quantize_bits is not None:
            raise ValueError("quantize_bits applies when pushing an SB3 policy, not an Actor already built")
        return policy  # already an Actor
    return SB3PolicyActor(policy, quantize_bits=quantize_bits)


def _space_fits(policy_space: Any, env_space: Any, is_action: bool) -> bool:
    """Whether a policy built for ``policy_space`` can act on ``env_space``.

    Box observations need the same size (SB3 flattens them, and transposes images to
    channels-first itself); Box actions the same shape (bounds may differ: actions are
    clipped); Dict observations the same keys, each fitting; anything else equality.
    """
    from gymnasium import spaces

    if isinstance(env_space, spaces.Dict):
        return (
            isinstance(policy_space, spaces.Dict)
            and set(policy_space.spaces) == set(env_space.spaces)
            and all(_space_fits(policy_space[key], env_space[key], is_action) for key in env_space.spaces)
        )
    if isinstance(env_space, spaces.Box):
        if not isinstance(policy_space, spaces.Box):
            return False
        if is_action:
            return policy_space.shape == env_space.shape
        return int(np.prod(policy_space.shape)) == int(np.prod(env_space.shape))
    return policy_space == env_space


def _check_actor_spaces(actor: Any, observation_space: Any, action_space: Any, name: str, where: str) -> None:
    """Raise a ``ValueError`` if ``actor`` (an SB3 policy or :class:`SB3PolicyActor`) was built for other spaces.

    A custom :class:`Actor` without ``observation_space`` / ``action_space`` is not checked.
    """
    actor_obs, actor_act = getattr(actor, "observation_space", None), getattr(actor, "action_space", None)
    if actor_obs is None or actor_act is None:
        return
    if not (_space_fits(actor_obs, observation_space, False) and _space_fits(actor_act, action_space, True)):
        raise ValueError(
            f"{name} was built for observation space {actor_obs} and action space {actor_act}, but {where} has "
            f"observation space {observation_space} and action space {action_space}: push a policy of this env"
        )


def push_policy_snapshot(venv_or_env: Any, policy: Any, quantize_bits: int | None = None) -> int:
    """Push one snapshot of ``policy`` to every policy-driven wrapper of ``venv_or_env``.

    ``venv_or_env`` is

    * an SB3 ``VecEnv`` (``DummyVecEnv`` envs all receive the same actor object;
      ``SubprocVecEnv`` pickles it to each worker; an adapter of a Gymnasium vector env,
      :class:`dg_envs.vec_env.GymnasiumVecEnv`, hands it once to the vector stack);
    * a Gymnasium ``VectorEnv``: the outermost vector policy-driven wrapper
      (:mod:`dg_envs.wrappers.vector`) stores it once and forwards it inwards, down to per-env
      wrappers inside the sub-envs of a ``SyncVectorEnv``;
    * or a single Gymnasium env.

    ``policy`` is an SB3 policy (one :class:`SB3PolicyActor` copy is made) or already an
    :class:`Actor`. Returns how many envs (sub-envs of a vector env) it reached: 0, cheaply and
    without copying the policy, when none has a policy-driven wrapper (for a VecEnv the answer
    is cached; SB3's ``has_attr`` asks whether *all* envs have one). ``quantize_bits``
    quantises the copy (see :class:`SB3PolicyActor`). A ``policy`` that is neither raises a
    ``TypeError``, and one built for other observation or action spaces than the env's a
    ``ValueError``, here rather than at the next step.

    Example:
        >>> import gymnasium as gym
        >>> from stable_baselines3 import PPO
        >>> from stable_baselines3.common.env_util import make_vec_env
        >>> from dg_envs.wrappers import StaleActor, vector
        >>> venv = make_vec_env("CartPole-v1", n_envs=2, wrapper_class=StaleActor, wrapper_kwargs={"lag": 1})
        >>> model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, device="cpu")
        >>> push_policy_snapshot(venv, model.policy)
        2
        >>> push_policy_snapshot(gym.make("CartPole-v1"), model.policy)
        0
        >>> envs = vector.StaleActor(gym.make_vec("CartPole-v1", num_envs=4), lag=1)
        >>> push_policy_snapshot(envs, model.policy), len(envs.snapshots)  # one snapshot for 4 sub-envs
        (4, 1)
    """
    from gymnasium.vector import SyncVectorEnv, VectorEnv, VectorWrapper
    from stable_baselines3.common.vec_env import VecEnv

    _check_policy(policy)
    quantize_bits = _check_quantize_bits(quantize_bits)
    if isinstance(venv_or_env, VecEnv):
        try:
            has_push = _HAS_PUSH_CACHE[venv_or_env]
        except (KeyError, TypeError):
            has_push = bool(venv_or_env.has_attr("push_policy_snapshot"))
            try:
                _HAS_PUSH_CACHE[venv_or_env] = has_push
            except TypeError:
                pass
        if not has_push:
            return 0
        # Checked here too: an error inside a SubprocVecEnv worker would only kill the worker.
        where = f"the {type(venv_or_env).__name__}"
        _check_actor_spaces(policy, venv_or_env.observation_space, venv_or_env.action_space, "policy", where)
        results = venv_or_env.env_method("push_policy_snapshot", _as_actor(policy, quantize_bits))
        return sum(1 for accepted in results if accepted)
    if isinstance(venv_or_env, VectorEnv):
        layer = venv_or_env
        while not hasattr(layer, "push_policy_snapshot") and isinstance(layer, VectorWrapper):
            layer = layer.env
        if hasattr(layer, "push_policy_snapshot"):  # it forwards inwards itself
            where = type(layer).__name__
            _check_actor_spaces(policy, layer.single_observation_space, layer.single_action_space, "policy", where)
            layer.push_policy_snapshot(_as_actor(policy, quantize_bits))
            return venv_or_env.num_envs
        subs = [env for env in getattr(layer, "envs", ()) if env.has_wrapper_attr("push_policy_snapshot")]
        if not isinstance(layer, SyncVectorEnv) or not subs:
            return 0
        actor = _as_actor(policy, quantize_bits)
        return sum(1 for env in subs if push_policy_snapshot(env, actor))
    try:
        push = venv_or_env.get_wrapper_attr("push_policy_snapshot")
    except AttributeError:
        return 0
    actor = _as_actor(policy, quantize_bits)
    spaces_of = getattr(push, "__self__", None)  # the wrapper: checked against its own spaces
    if spaces_of is not None and hasattr(spaces_of, "observation_space"):
        _check_actor_spaces(actor, spaces_of.observation_space, spaces_of.action_space, "policy", type(spaces_of).__name__)
    return 1 if push(actor) else 0


class PolicyOracle:
    """An oracle for :class:`~dg_envs.wrappers.RareDiscovery` from a saved expert: its greedy action.

    For tasks without ``optimal_action()`` (MuJoCo, say) the "correct" action of a discovery
    is what an expert would do. ``PolicyOracle(model)`` takes a trained SB3 model (or its
    policy); ``PolicyOracle.load(path)`` a saved one. It keeps the policy only, on the CPU,
    so it pickles into ``SubprocVecEnv`` workers.

    Example:
        >>> import gymnasium as gym
        >>> from stable_baselines3 import PPO
        >>> from dg_envs.wrappers import RareDiscovery
        >>> expert = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64, seed=0, device="cpu")
        >>> oracle = PolicyOracle(expert)
        >>> env = RareDiscovery(gym.make("Pendulum-v1"), p=1.0, oracle=oracle)
        >>> obs, _ = env.reset(seed=0)
        >>> info = env.step(env.action_space.sample())[4]
        >>> bool((info["executed_action"] == oracle(obs)).all()), info["frictions"]
        (True, ['discovery'])
    """

    def __init__(self, model_or_policy: Any) -> None:
        policy = getattr(model_or_policy, "policy", model_or_policy)
        if not callable(getattr(policy, "predict", None)):
            raise ValueError(f"model_or_policy must be an SB3 model or policy (with .predict), got {model_or_policy!r}")
        self.policy = policy.to("cpu")
        self.policy.set_training_mode(False)

    @classmethod
    def load(cls, path: Any, algo: Any = None) -> PolicyOracle:
        """An oracle from a model saved by ``model.save(path)`` (``algo``: its class, PPO by default)."""
        if algo is None:
            from stable_baselines3 import PPO as algo
        return cls(algo.load(path, device="cpu"))

    def __call__(self, obs: Any) -> Any:
        return self.policy.predict(obs, deterministic=True)[0]


def _base_callback() -> type:
    from stable_baselines3.common.callbacks import BaseCallback

    return BaseCallback


class SnapshotCallback(_base_callback()):  # type: ignore[misc]
    """Push the learner's policy to the env's policy-driven wrappers after every update.

    For vanilla SB3 algorithms (``dg_envs.algos`` push by themselves). Pushes once at training
    start and then at each rollout start that follows a ``train()`` call (SB3 calls
    ``_on_rollout_start`` right after ``train()``), so the lag of a
    :class:`~dg_envs.wrappers.StaleActor` is counted in learner updates (``train()`` calls,
    whatever PPO's number of epochs). A ``train()`` call is detected by a change of
    ``model._n_updates``.

    Note: a vanilla SB3 algorithm trains on the action its policy proposed, not on
    ``info["executed_action"]``; use ``dg_envs.algos`` to train on what really ran.

    Example:
        >>> from stable_baselines3 import PPO
        >>> from stable_baselines3.common.env_util import make_vec_env
        >>> from dg_envs.wrappers import StaleActor
        >>> venv = make_vec_env("CartPole-v1", n_envs=2, wrapper_class=StaleActor, wrapper_kwargs={"lag": 1})
        >>> model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=2, device="cpu")
        >>> callback = SnapshotCallback()
        >>> _ = model.learn(total_timesteps=96, callback=callback)
        >>> callback.num_pushes  # training start + one per train() call before the last rollout
        3
    """

    def __init__(self, verbose: int = 0, quantize_bits: int | None = None) -> None:
        quantize_bits = _check_quantize_bits(quantize_bits)
        super().__init__(verbose)
        self.quantize_bits = quantize_bits
        self.num_pushes = 0
        self._last_n_updates: int | None = None

    def _push(self) -> None:
        if push_policy_snapshot(self.training_env, self.model.policy, quantize_bits=self.quantize_bits):
            self.num_pushes += 1
        self._last_n_updates = getattr(self.model, "_n_updates", None)

    def _on_training_start(self) -> None:
        self._push()

    def _on_rollout_start(self) -> None:
        if getattr(self.model, "_n_updates", None) != self._last_n_updates:
            self._push()

    def _on_step(self) -> bool:
        return True
