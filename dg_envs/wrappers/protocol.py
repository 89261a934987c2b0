"""The executed-action protocol: how a friction tells the learner what really ran.

On a step where a wrapper replaced the learner's action:

* ``info["executed_action"]`` is the action actually applied to the environment;
* ``info["behavior_log_prob"]`` is the log-probability the actor *reports* for it
  (a buggy actor lies and reports certainty, 0.0);
* ``info["actor_lag"]``, when a policy-driven actor's own action ran, is how many learner
  updates old its snapshot was.

Absent keys mean the learner's own action ran. The innermost replacement wins: it is the
one the environment saw, so an outer wrapper never overwrites what an inner one reported
(:func:`innermost_wins`, the one place that rule is written). ``info["frictions"]`` names
the frictions that fired on this step, and a corrupted reward keeps the clean one in
``info["true_reward"]``.

Two forms of ``info``, one rule. A single env's ``info`` holds the values; a Gymnasium
vector env's ``info`` holds, per key, an array over sub-envs and the boolean mask
``info["_" + key]`` of the sub-envs where it is set (for ``frictions``: an object array of
tuples of names). Each function below takes either: a ``bool`` ``fired`` means a single
env's dict, a boolean array ``fired`` a vector env's. The vector wrappers collect a step's
entries in a :class:`VectorStepRecord` and write them once.

>>> info = {}
>>> record_replacement(info, executed_action=3, behavior_log_prob=0.0, friction=BUG)
True
>>> info
{'executed_action': 3, 'behavior_log_prob': 0.0, 'frictions': ['bug']}
>>> record_replacement(info, executed_action=1, behavior_log_prob=-0.7, friction=STALE)
False
>>> info["executed_action"], info["frictions"]
(3, ['bug', 'stale'])

The same rule on a vector ``info`` (sub-env 0: an inner bug ran; sub-env 2: nothing fired):

>>> import numpy as np
>>> vec = {"executed_action": np.array([3, 0, 0]), "_executed_action": np.array([True, False, False])}
>>> record_replacement(vec, np.array([1, 1]), np.array([-0.7, -0.7]), STALE, fired=np.array([True, True, False]))
array([False,  True, False])
>>> vec["executed_action"], vec["_executed_action"], vec["frictions"].tolist()
(array([3, 1, 0]), array([ True,  True, False]), [('stale',), ('stale',), None])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "EXECUTED_ACTION",
    "BEHAVIOR_LOG_PROB",
    "FRICTIONS",
    "TRUE_REWARD",
    "ACTOR_LAG",
    "STALE",
    "MISMATCH",
    "BUG",
    "RANDOM_ANSWER",
    "REWARD_CORRUPTION",
    "DISCOVERY",
    "innermost_wins",
    "VectorStepRecord",
    "fired_mask",
    "record_friction",
    "record_replacement",
    "record_reward_change",
]

EXECUTED_ACTION = "executed_action"
BEHAVIOR_LOG_PROB = "behavior_log_prob"
FRICTIONS = "frictions"
TRUE_REWARD = "true_reward"
#: How many learner updates old the snapshot a policy-driven actor acted with was.
ACTOR_LAG = "actor_lag"

# The names friction wrappers write into ``info["frictions"]`` (one per friction module).
STALE = "stale"
MISMATCH = "mismatch"
BUG = "bug"
RANDOM_ANSWER = "random_answer"
REWARD_CORRUPTION = "reward_corruption"
DISCOVERY = "discovery"

_FINAL_INFO = "final_info"


def _vector_mask(info: dict[str, Any], key: str, num_envs: int) -> np.ndarray | None:
    """Where a vector ``info`` holds ``key``, or None where no sub-env does.

    A sub-env whose episode ended in a ``SAME_STEP`` autoreset has its last step's info in
    ``info["final_info"]`` (a ``SyncVectorEnv`` of per-env frictions puts it there), so that
    counts as well.
    """
    mask = info.get("_" + key)
    final = info.get(_FINAL_INFO)
    if final and "_" + key in final:
        final_mask = final["_" + key] & info.get("_" + _FINAL_INFO, np.ones(num_envs, dtype=bool))
        mask = final_mask if mask is None else mask | final_mask
    return mask


def innermost_wins(inner_replaced: Any, fired: Any) -> Any:
    """Where a friction that ``fired`` is the one whose action ran: it fired where no inner wrapper replaced the action.

    Single env: ``inner_replaced`` and ``fired`` are ``bool`` (an inner replacement is there when
    ``"executed_action" in info``). Vector env: boolean masks over sub-envs (``inner_replaced``
    may be None: nothing replaced); the result is the mask of sub-envs where this friction's
    replacement ran (``fired`` itself when nothing below replaced anything).
    """
    if fired is True or fired is False:  # a single env's info: the hot path, first
        return fired and not inner_replaced
    return fired if inner_replaced is None else fired > inner_replaced  # fired and not replaced


def fired_mask(info: dict[str, Any], name: str, num_envs: int) -> np.ndarray:
    """The sub-envs of a vector ``info`` where friction ``name`` fired (a loop over those where any did)."""
    out = np.zeros(num_envs, dtype=bool)
    for holder in (info, info.get(_FINAL_INFO) or {}):
        mask = holder.get("_" + FRICTIONS)
        if mask is not None and np.count_nonzero(mask):
            idx = mask.nonzero()[0]
            names = holder[FRICTIONS]
            out[idx] |= np.fromiter((name in names[i] for i in idx.tolist()), dtype=bool, count=len(idx))
    return out


def _names(friction: str | Sequence[str]) -> tuple[str, ...]:
    return (friction,) if isinstance(friction, str) else tuple(friction)


def record_friction(info: dict[str, Any], friction: str | Sequence[str], fired: Any = True) -> None:
    """Add the name(s) ``friction`` to ``info["frictions"]`` where ``fired``, after what inner wrappers recorded.

    A single env's ``info`` gets a fresh list (the inner list is never mutated); a vector
    ``info`` (``fired``: a mask) gets a fresh object array of tuples and its mask.
    """
    if not isinstance(fired, np.ndarray):
        if fired:
            info[FRICTIONS] = [*info.get(FRICTIONS, ()), *_names(friction)]
        return
    record = VectorStepRecord(info, len(fired))
    record.fire(fired, _names(friction))
    info.update(record.materialise())


def record_replacement(
    info: dict[str, Any],
    executed_action: Any,
    behavior_log_prob: Any,
    friction: str | Sequence[str],
    fired: Any = True,
    actor_lag: Any = None,
) -> Any:
    """Record that a friction replaced the learner's action, unless an inner wrapper already did.

    Call it on the ``info`` returned by the inner env. Where :func:`innermost_wins` says so,
    ``executed_action`` and ``behavior_log_prob`` (and ``actor_lag``, when given) are
    written; the name(s) ``friction`` are added to ``info["frictions"]`` wherever it fired.
    Returns where this friction's action ran (a ``bool``, or a mask for a vector ``info``).

    Vector form: ``fired`` is the boolean mask over sub-envs, and ``executed_action``,
    ``behavior_log_prob``, ``actor_lag`` hold one row per sub-env where it fired, in sub-env order
    (see :class:`VectorStepRecord`, which the vector wrappers use directly).
    """
    if fired is True or fired is False:  # a single env's info (every firing step of a per-env wrapper)
        won = innermost_wins(EXECUTED_ACTION in info, fired)
        if won:
            info[EXECUTED_ACTION] = executed_action
            info[BEHAVIOR_LOG_PROB] = float(behavior_log_prob)
            if actor_lag is not None:
                info[ACTOR_LAG] = int(actor_lag)
        if fired:
            info[FRICTIONS] = [*info.get(FRICTIONS, ()), *((friction,) if type(friction) is str else friction)]
        return won
    won = innermost_wins(_vector_mask(info, EXECUTED_ACTION, len(fired)), fired)
    record = VectorStepRecord(info, len(fired))
    record.replace(fired, np.asarray(executed_action), behavior_log_prob, _names(friction), actor_lag)
    info.update(record.materialise())
    return won


def record_reward_change(info: dict[str, Any], true_reward: Any, changed: Any = True) -> None:
    """Keep the clean reward in ``info["true_reward"]`` where the reward was ``changed``.

    An inner corruption's ``true_reward`` is kept: it is the clean one. Vector form:
    ``changed`` is a mask and ``true_reward`` holds one value per sub-env where it is set.
    """
    if not isinstance(changed, np.ndarray):
        if changed:
            info.setdefault(TRUE_REWARD, float(true_reward))
        return
    record = VectorStepRecord(info, len(changed))
    record.change_rewards(changed, np.asarray(true_reward, dtype=np.float64), ())
    info.update(record.materialise())  # names (): the caller records its friction


class _Layer:
    """What one friction layer did on a vector step (see :class:`VectorStepRecord`)."""

    __slots__ = ("fired", "every", "names", "executed", "log_probs", "lags", "changed", "clean")

    def __init__(self, fired: np.ndarray, every: bool, names: tuple[str, ...]) -> None:
        self.fired, self.every, self.names = fired, every, names  # every: it fired in every sub-env
        self.executed = self.log_probs = self.lags = self.changed = self.clean = None


#: Object arrays mapping a code (bit j: layer j fired) to the tuple of names, per stack of layers' names.
_TABLES: dict[tuple[tuple[str, ...], ...], np.ndarray] = {}
_MAX_TABLE_LAYERS = 8  # codes are uint8
#: Object arrays of one tuple of names for every sub-env, per (names, number of sub-envs).
_FULL: dict[tuple[tuple[str, ...], int], np.ndarray] = {}


def _names_table(layers: tuple[tuple[str, ...], ...]) -> np.ndarray:
    table = _TABLES.get(layers)
    if table is None:
        table = np.empty(2 ** len(layers), dtype=object)
        for code in range(1, len(table)):
            table[code] = tuple(name for j, names in enumerate(layers) if code >> j & 1 for name in names)
        _TABLES[layers] = table
    return table


def _write(buffer: np.ndarray | None, info: dict[str, Any], key: str, won: np.ndarray, rows: np.ndarray, layer: _Layer) -> np.ndarray:
    """``buffer`` (created on first use: a copy of the inner ``info[key]``, else zeros) with ``layer``'s rows where it ``won``."""
    n = len(won)
    if buffer is None:
        old = info.get(key)
        if old is None or "_" + key not in info:
            if layer.every and won is layer.fired:  # every sub-env, nothing below: the rows are the array
                return np.array(rows, copy=True)  # a copy: rows may be a wrapper's own array
            buffer = np.zeros((n, *rows.shape[1:]), dtype=rows.dtype)
        else:
            buffer = np.array(old, copy=True)
    if won is layer.fired:
        buffer[won] = rows
    elif layer.every:  # the rows of every sub-env: where it won
        np.copyto(buffer, rows, where=won.reshape(n, *([1] * (rows.ndim - 1))))
    else:
        buffer[won] = rows[won[layer.fired]]
    return buffer


class VectorStepRecord:
    """The protocol entries of one vector step, collected from the friction layers and written into ``info`` once.

    ``info`` is the inner env's (it may already hold protocol entries: per-env frictions inside a
    ``SyncVectorEnv``, or vector frictions below a wrapper of another kind). Each vector friction
    wrapper adds what it did — :meth:`replace` (where it fired, its executed rows, reported
    log-probabilities, actor lags, names), :meth:`fire` (names only), :meth:`change_rewards` —
    and passes the record to the friction wrapper around it; the outermost one calls
    :meth:`materialise`. There the rule of :func:`innermost_wins` is applied layer by layer from
    the inside out, and each key's array and mask are built once per step instead of once per
    layer: a NumPy call costs about a microsecond, and a stack of four frictions would otherwise
    pay dozens of them per step, more than a small batched env's whole step.

    ``dones`` (``terminated | truncated``, when given) is computed once for all layers.

    >>> record = VectorStepRecord({}, 3)
    >>> record.replace(np.array([True, True, False]), np.array([0, 0]), np.zeros(2), ("bug",))
    >>> record.replace(np.array([True, True, True]), np.array([1, 1, 1]), np.full(3, -0.5), ("stale",), np.zeros(3, int))
    >>> info = record.materialise()
    >>> info["executed_action"], info["behavior_log_prob"], info["_actor_lag"]
    (array([0, 0, 1]), array([ 0. ,  0. , -0.5]), array([False, False,  True]))
    >>> info["frictions"].tolist()
    [('bug', 'stale'), ('bug', 'stale'), ('stale',)]
    """

    __slots__ = ("info", "num_envs", "dones", "any_done", "_layers")

    def __init__(self, info: dict[str, Any], num_envs: int, dones: np.ndarray | None = None) -> None:
        self.info, self.num_envs, self.dones = info, num_envs, dones
        self.any_done = dones is not None and bool(np.count_nonzero(dones))
        self._layers: list[_Layer] = []

    def replace(self, fired: np.ndarray, executed: np.ndarray, log_probs: Any, names: tuple[str, ...], actor_lags: Any = None) -> None:
        """A layer replaced the action where ``fired`` (rows: one per fired sub-env, in order)."""
        layer = _Layer(fired, len(executed) == self.num_envs, names)
        layer.executed, layer.log_probs, layer.lags = executed, log_probs, actor_lags
        self._layers.append(layer)

    def fire(self, fired: np.ndarray, names: tuple[str, ...]) -> None:
        """A layer fired where ``fired`` without replacing the action."""
        self._layers.append(_Layer(fired, False, names))

    def change_rewards(self, changed: np.ndarray, clean: np.ndarray, names: tuple[str, ...], fired: np.ndarray | None = None) -> None:
        """A layer changed the rewards where ``changed`` (``clean``: the rewards there); it fired where ``fired``."""
        layer = _Layer(changed if fired is None else fired, False, names)
        layer.changed, layer.clean = changed, clean
        self._layers.append(layer)

    def fired(self, name: str) -> np.ndarray | None:
        """Where friction ``name`` fired on this step so far (None: nowhere)."""
        mask = fired_mask(self.info, name, self.num_envs) if FRICTIONS in self.info or _FINAL_INFO in self.info else None
        for layer in self._layers:
            if name in layer.names:
                mask = layer.fired if mask is None else mask | layer.fired
        return mask

    def materialise(self) -> dict[str, Any]:
        """The step's ``info``: the inner one with every layer's entries, in Gymnasium's vector convention."""
        if not self._layers:
            return self.info
        info = dict(self.info)
        replaced = _vector_mask(info, EXECUTED_ACTION, self.num_envs)
        # Where the top level holds an executed action: ``replaced`` unless a SAME_STEP final_info holds some.
        written = info.get("_" + EXECUTED_ACTION) if _FINAL_INFO in info else None
        executed = log_probs = lags = lag_mask = true_reward = true_mask = None
        for layer in self._layers:  # from the inside out
            if layer.executed is not None:
                won = innermost_wins(replaced, layer.fired)
                executed = _write(executed, info, EXECUTED_ACTION, won, layer.executed, layer)
                log_probs = _write(log_probs, info, BEHAVIOR_LOG_PROB, won, np.asarray(layer.log_probs, dtype=np.float64), layer)
                if layer.lags is not None:
                    lags = _write(lags, info, ACTOR_LAG, won, np.asarray(layer.lags, dtype=np.int64), layer)
                    if lag_mask is None:
                        inner = info.get("_" + ACTOR_LAG)
                        lag_mask = won.copy() if inner is None else inner | won
                    else:
                        lag_mask |= won
                replaced = layer.fired if replaced is None else replaced | layer.fired
                if _FINAL_INFO in info:
                    written = won if written is None else written | won
            if layer.changed is not None:
                if true_reward is None:
                    true_mask = np.array(info.get("_" + TRUE_REWARD, np.zeros(self.num_envs, dtype=bool)), copy=True)
                where = layer.changed > true_mask  # the innermost clean reward is kept
                true_reward = _write(true_reward, info, TRUE_REWARD, where, layer.clean[where[layer.changed]], _Layer(where, False, ()))
                true_mask |= where
        if executed is not None:
            mask = (written if _FINAL_INFO in info else replaced).copy()  # one mask for both keys (never written through)
            info[EXECUTED_ACTION], info["_" + EXECUTED_ACTION] = executed, mask
            info[BEHAVIOR_LOG_PROB], info["_" + BEHAVIOR_LOG_PROB] = log_probs, mask
        if lags is not None:
            info[ACTOR_LAG], info["_" + ACTOR_LAG] = lags, lag_mask
        if true_reward is not None:
            info[TRUE_REWARD], info["_" + TRUE_REWARD] = true_reward, true_mask
        self._add_names(info)
        return info

    def _add_names(self, info: dict[str, Any]) -> None:
        layers, n = [layer for layer in self._layers if layer.names], self.num_envs
        if not layers:
            return
        if len(layers) == 1:
            layer = layers[0]
            if layer.every:  # a copy of a ready-made array of the names
                full = _FULL.get((layer.names, n))
                if full is None:
                    full = _FULL[layer.names, n] = np.full(n, None, dtype=object)
                    full[:] = _names_table((layer.names,))[1:]
                ours = full.copy()
            else:
                ours = np.empty(n, dtype=object)
                ours[layer.fired] = _names_table((layer.names,))[1:]  # a 1-element object array: broadcast
            mask = layer.fired.copy()
        elif len(layers) <= _MAX_TABLE_LAYERS:  # each sub-env's names from a table: one fancy index
            codes = layers[0].fired.view(np.uint8).copy()
            for j, layer in enumerate(layers[1:], start=1):
                codes |= layer.fired.view(np.uint8) << j
            ours = _names_table(tuple(layer.names for layer in layers))[codes]
            mask = codes.astype(bool)
        else:  # an unlikely stack: a loop over its layers
            ours = np.full(n, None, dtype=object)
            for layer in layers:
                ours[layer.fired] = np.frompyfunc(lambda inner, names=layer.names: (*(inner or ()), *names), 1, 1)(ours[layer.fired])
            mask = np.frompyfunc(lambda names: names is not None, 1, 1)(ours).astype(bool)
        old, old_mask = info.get(FRICTIONS), info.get("_" + FRICTIONS)
        if old is not None and old_mask is not None:  # inner names come first
            both = old_mask & mask
            merged = np.where(old_mask, old, ours)
            if np.count_nonzero(both):
                merged[both] = np.frompyfunc(lambda inner, outer: (*inner, *outer), 2, 1)(old[both], ours[both])
            ours, mask = merged, old_mask | mask
        info[FRICTIONS], info["_" + FRICTIONS] = ours, mask
