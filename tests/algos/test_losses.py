"""The pure losses against transcriptions of the reference code, and by hand values.

Each ``ref_*`` function below transcribes one loss of the papers' reference code
(google-deepmind/egg release, commit d005eac, ``egg/losses/*.py``) from JAX to torch, line by
line from the point where the answer tokens' log-probs exist, in the reference's layout:
``(B, A)`` tokens, ``row_mask`` (B,), token mask ``answers >= 0``, group ids. Our losses get
the same batch as SB3 would hold it: one sample per token, flattened, advantages from
:func:`dg_envs.algos.group.group_baseline_advantages` over the buffer layout
``(n_steps=A, n_envs=B)``. The gradients with respect to the logits must agree to 1e-6.
"""

import math

import numpy as np
import pytest
import torch as th

from dg_envs.algos.group import group_baseline_advantages
from dg_envs.algos.losses import (
    cross_entropy_loss, dg_loss, episode_sum, kondo_keep, kondo_loss, pmpo_loss, ppo_loss, reinforce_loss,
)

TOL = 1e-6
N_GROUPS, K, A, V = 3, 4, 5, 3  # 3 prompts x 4 samples, answers of 5 tokens over 3 symbols
B = N_GROUPS * K
PAD = -1


# ---------------------------------------------------------------------------------------------
# Transcriptions of the reference (jax -> torch). jnp.x -> th.x; .at[i].add -> index_add.
# ---------------------------------------------------------------------------------------------
def ref_forward(logits, answers, row_mask):
    """egg/losses/common.py forward_pass, from the logits of the answer positions on."""
    seqs_in = th.where(answers < 0, th.zeros_like(answers), answers)
    lp_all = th.log_softmax(logits, dim=-1)
    lp_pol = th.take_along_dim(lp_all, seqs_in[..., None], dim=-1).squeeze(-1)
    ans_tok_mask = (answers >= 0).float()
    return lp_all, lp_pol, ans_tok_mask * row_mask[:, None]


def ref_grouped_advantages(rewards, group_ids, num_groups, row_mask, eps=1e-9):
    """egg/losses/common.py grouped_advantages."""
    sum_r = th.zeros(num_groups, dtype=rewards.dtype).index_add(0, group_ids, rewards * row_mask)
    cnt_r = th.zeros(num_groups, dtype=th.float32).index_add(0, group_ids, row_mask)
    baseline_per_group = sum_r / (cnt_r + eps)
    return rewards - baseline_per_group[group_ids].detach()


def ref_dg(logits, answers, rewards, sample_log_probs, group_ids, row_mask,
           eta_learn=1.0, lambda_learn=0.0, beta_kl=0.0):
    """egg/losses/dg.py DelightSigmoidLoss.__call__ (stochastic_gate=False, no override_ucb, no noise)."""
    _, lp_pol_answer, token_mask = ref_forward(logits, answers, row_mask)
    lp_act_answer = sample_log_probs
    g = N_GROUPS
    sum_r = th.zeros((g,), dtype=rewards.dtype).index_add(0, group_ids, rewards * row_mask)
    cnt_r = th.zeros((g,), dtype=th.float32).index_add(0, group_ids, row_mask)
    base_g = sum_r / (cnt_r + 1e-9)
    baseline = base_g[group_ids]
    advantage = rewards - baseline.detach()
    a_tok = advantage[:, None] * token_mask
    surprisal_tok = -lp_pol_answer
    delight_tok = advantage[:, None] * surprisal_tok
    gate_input = delight_tok
    if eta_learn == 0.0:
        gate_prob = (gate_input > lambda_learn).float()
    else:
        gate_prob = th.sigmoid((gate_input - lambda_learn) / eta_learn)
    gate_weight_sg = gate_prob.detach()
    per_tok_reinf = -a_tok * lp_pol_answer
    per_tok_loss = gate_weight_sg * per_tok_reinf
    tok_count = th.sum(token_mask) + 1e-8
    loss_delight = th.sum(per_tok_loss) / tok_count
    kl_tok = (lp_act_answer - lp_pol_answer) * token_mask
    loss_kl = th.sum(kl_tok) / tok_count
    return loss_delight + beta_kl * loss_kl


def ref_ppo(logits, answers, rewards, sample_log_probs, group_ids, row_mask, clip_epsilon=0.2, beta_kl=0.0):
    """egg/losses/ppo.py PpoLoss.__call__ (use_grouped_baseline=True)."""
    _, lp_answer, token_mask = ref_forward(logits, answers, row_mask)
    lp_act = sample_log_probs
    advantages = ref_grouped_advantages(rewards, group_ids, N_GROUPS, row_mask)
    a_tok = advantages[:, None] * token_mask
    log_ratio_tok = (lp_answer - lp_act) * token_mask
    ratio_tok = th.exp(log_ratio_tok) + 0.0
    r_clip = th.clip(ratio_tok, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
    obj_unclipped = ratio_tok * a_tok
    obj_clipped = r_clip * a_tok
    obj_min = th.minimum(obj_unclipped, obj_clipped)
    tok_count = th.sum(token_mask) + 1e-8
    loss_surrogate = -th.sum(obj_min) / tok_count
    kl_tok = (lp_act - lp_answer) * token_mask
    loss_kl = th.sum(kl_tok) / tok_count
    return loss_surrogate + beta_kl * loss_kl


def ref_reinforce(*args):
    """experiments/dpg/run.py, loss == "reinforce": Loss.PPO.config(clip_epsilon=1e9, beta_kl=0.0, ...)."""
    return ref_ppo(*args, clip_epsilon=1e9, beta_kl=0.0)


def ref_pmpo(logits, answers, rewards, sample_log_probs, group_ids, row_mask, alpha=0.5, beta=0.1, gamma=1e-9):
    """egg/losses/pmpo.py PMPOToken.__call__ (use_grouped_baseline=True)."""
    _, lp_answer, token_mask = ref_forward(logits, answers, row_mask)
    lp_samp = sample_log_probs
    ans_tok_mask = (answers >= 0).float()
    advantages = ref_grouped_advantages(rewards, group_ids, N_GROUPS, row_mask)
    is_pref_seq = advantages > 0.0
    pref_mask = (is_pref_seq.float() * row_mask)[:, None] * ans_tok_mask
    rej_mask = ((1.0 - is_pref_seq.float()) * row_mask)[:, None] * ans_tok_mask
    loss_pref_tok = -lp_answer
    sum_pref = th.sum(loss_pref_tok * pref_mask)
    cnt_pref = th.sum(pref_mask) + 1e-8
    avg_loss_preferred = sum_pref / cnt_pref
    log_gamma = math.log(gamma) if gamma > 0.0 else -math.inf
    loss_rej_tok = th.logaddexp(th.tensor(log_gamma), lp_answer)
    sum_rej = th.sum(loss_rej_tok * rej_mask)
    cnt_rej = th.sum(rej_mask) + 1e-8
    avg_loss_dispreferred = sum_rej / cnt_rej
    kl_tok = lp_samp - lp_answer
    loss_kl = th.sum(kl_tok * token_mask) / (th.sum(token_mask) + 1e-8)
    return alpha * avg_loss_preferred + (1.0 - alpha) * avg_loss_dispreferred + beta * loss_kl


def ref_kondo(logits, answers, rewards, sample_log_probs, group_ids, row_mask, pct_learn=0.3, beta_kl=0.0):
    """egg/losses/kondo.py KondoLoss.__call__ (priority='delight')."""
    _, lp_pol_answer, token_mask = ref_forward(logits, answers, row_mask)
    lp_act_answer = sample_log_probs
    total_valid_tokens = th.sum(token_mask)
    g = N_GROUPS
    sum_r = th.zeros((g,), dtype=rewards.dtype).index_add(0, group_ids, rewards * row_mask)
    cnt_r = th.zeros((g,), dtype=th.float32).index_add(0, group_ids, row_mask)
    base_g = sum_r / (cnt_r + 1e-9)
    baseline = base_g[group_ids]
    advantage = rewards - baseline.detach()
    a_tok = advantage[:, None] * token_mask
    surprisal_tok = -lp_pol_answer
    priority_score = advantage[:, None] * surprisal_tok
    k_target = max(1, int(th.round(pct_learn * total_valid_tokens)))
    vals_flat = th.where(token_mask > 0.0, priority_score, -th.inf).reshape(-1)
    sorted_vals = th.sort(vals_flat).values
    threshold = sorted_vals[vals_flat.numel() - k_target] - 1e-6
    gate = (priority_score >= threshold).float() * token_mask
    gate_sg = gate.detach()
    per_tok_reinf = -a_tok * lp_pol_answer
    per_tok_loss = gate_sg * per_tok_reinf
    tok_count = total_valid_tokens + 1e-8
    loss_pg = th.sum(per_tok_loss) / tok_count
    kl_tok = (lp_act_answer - lp_pol_answer) * token_mask
    loss_kl = th.sum(kl_tok) / tok_count
    return loss_pg + beta_kl * loss_kl


def ref_xent(logits, answers, rewards, sample_log_probs, group_ids, row_mask):
    """egg/losses/xent.py CrossEntropyLoss.__call__ (the answers are the correct ones)."""
    _, lp_answer, token_mask = ref_forward(logits, answers, row_mask)
    return -th.sum(lp_answer * token_mask) / (th.sum(token_mask) + 1e-8)


# ---------------------------------------------------------------------------------------------
# One fixed batch, and our losses on it as SB3 holds it
# ---------------------------------------------------------------------------------------------
def fixed_batch():
    g = th.Generator().manual_seed(0)
    logits = (2.0 * th.randn(B, A, V, generator=g)).requires_grad_(True)
    answers = th.randint(0, V, (B, A), generator=g)
    answers[1, 3:] = PAD  # two shorter answers: token masks
    answers[6, 4:] = PAD
    answers[2] = answers[3]  # a tie: same answer, same logits, same reward in one group
    with th.no_grad():
        logits[2] = logits[3]
    rewards = th.rand(B, generator=g).round(decimals=1)
    rewards[2] = rewards[3]
    # Behaviour log-probs: the learner's perturbed (stale actor); rows 5 and 9 a lying actor's 0.
    with th.no_grad():
        lp = th.take_along_dim(th.log_softmax(logits, -1), answers.clamp(min=0)[..., None], -1).squeeze(-1)
    sample_log_probs = lp + 0.3 * th.randn(B, A, generator=g)
    sample_log_probs[[5, 9]] = 0.0
    group_ids = th.arange(N_GROUPS).repeat_interleave(K)
    row_mask = th.ones(B)
    return logits, answers, rewards, sample_log_probs, group_ids, row_mask


def ours_inputs(logits, answers, rewards, sample_log_probs):
    """Flatten to one sample per token; advantages from the buffer layout (n_steps=A, n_envs=B)."""
    buffer_rewards = np.zeros((A, B))
    buffer_rewards[-1] = rewards.numpy()  # the sequence reward arrives with the last token
    starts = np.zeros((A, B))
    starts[0] = 1
    adv, _ = group_baseline_advantages(buffer_rewards, starts, group_size=K, last_dones=np.ones(B))
    advantages = th.as_tensor(adv.T.astype(np.float32)).reshape(-1)  # (B, A) -> flat, as log_prob
    log_prob = th.take_along_dim(th.log_softmax(logits, -1), answers.clamp(min=0)[..., None], -1).reshape(-1)
    mask = (answers >= 0).float().reshape(-1)
    return log_prob, sample_log_probs.reshape(-1), advantages, mask


CASES = {
    "dg": (ref_dg, lambda lp, mu, adv, m: dg_loss(lp, adv, eta=1.0, mask=m)),
    "dg_hard_gate": (lambda *a: ref_dg(*a, eta_learn=0.0), lambda lp, mu, adv, m: dg_loss(lp, adv, eta=0.0, mask=m)),
    "dg_price": (lambda *a: ref_dg(*a, eta_learn=0.5, lambda_learn=0.2),
                 lambda lp, mu, adv, m: dg_loss(lp, adv, eta=0.5, price=0.2, mask=m)),
    "reinforce": (ref_reinforce, lambda lp, mu, adv, m: reinforce_loss(lp, mu, adv, mask=m)),
    "ppo": (ref_ppo, lambda lp, mu, adv, m: ppo_loss(lp, mu, adv, clip_range=0.2, mask=m)),
    "ppo_clip_1": (lambda *a: ref_ppo(*a, clip_epsilon=1.0), lambda lp, mu, adv, m: ppo_loss(lp, mu, adv, 1.0, mask=m)),
    "pmpo": (ref_pmpo, lambda lp, mu, adv, m: pmpo_loss(lp, mu, adv, alpha=0.5, beta=0.1, gamma=1e-9, mask=m)),
    "kondo": (ref_kondo, lambda lp, mu, adv, m: kondo_loss(lp, adv, keep_fraction=0.3, mask=m)),
    "kondo_tie": (lambda *a: ref_kondo(*a, pct_learn=0.52), lambda lp, mu, adv, m: kondo_loss(lp, adv, 0.52, mask=m)),
    "kondo_3pct": (lambda *a: ref_kondo(*a, pct_learn=0.03), lambda lp, mu, adv, m: kondo_loss(lp, adv, 0.03, mask=m)),
    "xent": (ref_xent, lambda lp, mu, adv, m: cross_entropy_loss(lp, mask=m)),
}


def gradient(loss_fn, logits):
    logits.grad = None
    loss = loss_fn()
    loss.backward()
    return loss.detach(), logits.grad.clone()


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference_transcription(name, record_property):
    """Same loss value (1e-6) and same gradient w.r.t. the logits (max abs difference <= 1e-6)."""
    ref_fn, ours_fn = CASES[name]
    logits, answers, rewards, mu, group_ids, row_mask = fixed_batch()
    ref_loss, ref_grad = gradient(lambda: ref_fn(logits, answers, rewards, mu, group_ids, row_mask), logits)
    our_loss, our_grad = gradient(lambda: ours_fn(*ours_inputs(logits, answers, rewards, mu)).loss, logits)
    diff = float((ref_grad - our_grad).abs().max())
    record_property("max_abs_grad_diff", diff)
    print(f"{name}: max |grad diff| = {diff:.2e}, |grad| max = {float(ref_grad.abs().max()):.2e}")
    assert float(ref_grad.abs().max()) > 1e-3  # the batch exercises the loss
    assert abs(float(ref_loss) - float(our_loss)) <= TOL
    assert diff <= TOL


def test_fixed_batch_exercises_the_edge_cases():
    """The batch has a lying actor's rows, masked tokens, negative and positive advantages, and a Kondo tie."""
    logits, answers, rewards, mu, group_ids, row_mask = fixed_batch()
    lp, mu_flat, adv, mask = ours_inputs(logits, answers, rewards, mu)
    assert (mu_flat == 0).sum() == 2 * A and (mask == 0).sum() == 3
    assert (adv > 0).any() and (adv < 0).any()
    # 57 valid tokens; keep_fraction 0.52 -> k = 30, and the 30th and 31st delights tie (rows 2 and 3).
    assert int(mask.sum()) == 57 and kondo_keep(adv, lp.detach(), 0.52, mask).sum() == 31
    # The ratio loss saw ratios far from 1 (the lie) and the clipped PPO clipped some.
    stats = ppo_loss(lp, mu_flat, adv, 0.2, mask).stats
    assert 0 < stats["clip_fraction"] < 1


# ---------------------------------------------------------------------------------------------
# Hand values
# ---------------------------------------------------------------------------------------------
def grad_of(loss_fn, log_prob):
    lp = th.tensor(log_prob, requires_grad=True)
    loss_fn(lp).loss.backward()
    return lp.grad


def test_dg_gate_hand_values():
    """Common action: gate 1/2; eta=inf: PG at half step; eta=0: hard gate; price shifts the threshold."""
    adv = th.tensor([1.0, -1.0, 2.0])
    lp = [0.0, math.log(0.01), math.log(0.5)]
    out = dg_loss(th.tensor(lp), adv, eta=1.0)
    w = [0.5, 1 / (1 + 100.0), 1 / (1 + 0.25)]  # sigmoid(A * -log p): p**-A / (1 + p**-A)
    assert math.isclose(float(out.stats["gate_mean"]), sum(w) / 3, rel_tol=1e-6)
    g_inf = grad_of(lambda x: dg_loss(x, adv, eta=math.inf), lp)
    assert th.allclose(g_inf, -0.5 * adv / 3)
    g_hard = grad_of(lambda x: dg_loss(x, adv, eta=0.0), lp)
    assert th.equal(g_hard, th.tensor([0.0, 0.0, -2.0 / 3]))  # chi = 0, -4.6, 1.39: only chi > 0
    g_price = grad_of(lambda x: dg_loss(x, adv, eta=0.0, price=-5.0), lp)
    assert th.allclose(g_price, -adv / 3)


def test_dg_gate_reads_the_surprisal_it_is_given():
    """surprisal= replaces -log pi in the gate only: a common token of a surprising answer is gated as the answer."""
    adv = th.tensor([-1.0, -1.0])
    lp = [math.log(0.9), math.log(0.01)]  # a common and a rare token of one answer
    answer = episode_sum(-th.tensor(lp), th.tensor([0, 0]))  # -log(0.9 * 0.01) on both
    assert th.allclose(answer, th.full((2,), -math.log(0.009)))
    g = grad_of(lambda x: dg_loss(x, adv, surprisal=answer), lp)
    w = 1 / (1 + 1 / 0.009)  # sigmoid(-1 * -log 0.009) = 0.009 / (1 + 0.009)
    assert th.allclose(g, th.tensor([w, w]) / 2)  # -(w * A) / n with A = -1
    g_step = grad_of(lambda x: dg_loss(x, adv), lp)  # the token gate: the common token keeps ~1/2
    assert math.isclose(float(g_step[0]), (1 / (1 + 1 / 0.9)) / 2, rel_tol=1e-6)


def test_episode_sum_hand_values_and_order_free_ids():
    values = th.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert episode_sum(values, th.tensor([2, 0, 2, 0, 1])).tolist() == [4.0, 6.0, 4.0, 6.0, 5.0]
    assert episode_sum(th.zeros(0), th.zeros(0, dtype=th.long)).numel() == 0


def test_kondo_ranks_by_the_surprisal_it_is_given():
    """With each answer's surprisal, both tokens of the most delightful answer tie and are kept together."""
    adv = th.tensor([1.0, 1.0, 0.5, 0.5])
    lp = th.log(th.tensor([0.9, 0.1, 0.2, 0.2]))  # answer 0: 0.9 * 0.1; answer 1: 0.2 * 0.2
    answer = episode_sum(-lp, th.tensor([0, 0, 1, 1]))
    assert kondo_keep(adv, lp, 0.25).tolist() == [False, True, False, False]  # token delight: only the rare one
    assert kondo_keep(adv, lp, 0.25, surprisal=answer).tolist() == [True, True, False, False]
    g = grad_of(lambda x: kondo_loss(x, adv, 0.25, surprisal=answer), lp.tolist())
    assert th.allclose(g, th.tensor([-0.25, -0.25, 0.0, 0.0]))


def test_reinforce_weight_is_the_reported_ratio():
    """A lying actor reports log mu = 0: the weight on its sample is pi / 1; a truthful one pi / mu."""
    lp = [math.log(0.1), math.log(0.1)]
    mu = th.tensor([0.0, math.log(0.2)])
    g = grad_of(lambda x: reinforce_loss(x, mu, th.tensor([1.0, 1.0])), lp)
    assert th.allclose(g, -th.tensor([0.1, 0.5]) / 2)


def test_ppo_clips_against_the_report():
    """A > 0 and r > 1 + eps: clipped, no gradient; A < 0 and r < 1 - eps: clipped, no gradient."""
    lp = [math.log(0.9), math.log(0.1), math.log(0.1)]
    mu = th.tensor([math.log(0.5), 0.0, 0.0])  # r = 1.8, 0.1, 0.1
    g = grad_of(lambda x: ppo_loss(x, mu, th.tensor([1.0, -1.0, 1.0]), 0.2), lp)
    assert th.allclose(g, th.tensor([0.0, 0.0, -0.1 / 3]))


def test_pmpo_accepts_by_sign_and_bounds_the_push_down():
    lp = [math.log(0.5), math.log(1e-3), math.log(0.5)]
    adv = th.tensor([1.0, -1.0, 0.0])  # A = 0 is rejected, as in the reference (A > 0 accepted)
    g = grad_of(lambda x: pmpo_loss(x, th.zeros(3), adv, alpha=0.5, beta=0.0, gamma=1e-9), lp)
    # accepted: -alpha / n_acc; rejected: (1 - alpha) * pi / (pi + gamma) / n_rej
    assert th.allclose(g, th.tensor([-0.5, 0.25 * 1e-3 / (1e-3 + 1e-9), 0.25 * 0.5 / (0.5 + 1e-9)]))
    out = pmpo_loss(th.tensor(lp), th.zeros(3), adv)
    assert math.isclose(float(out.stats["pmpo_accepted_fraction"]), 1 / 3, rel_tol=1e-6)


def test_kondo_keeps_ties_at_the_kth_value_and_divides_by_all():
    adv = th.tensor([1.0, 1.0, 1.0, -1.0, 0.5])
    lp = th.log(th.tensor([0.5, 0.5, 0.5, 0.5, 0.5]))  # delights 0.69 x3, -0.69, 0.35
    keep = kondo_keep(adv, lp, keep_fraction=0.2)  # k = 1, but three tie at the top
    assert keep.tolist() == [True, True, True, False, False]
    g = grad_of(lambda x: kondo_loss(x, adv, keep_fraction=0.2), lp.tolist())
    assert th.allclose(g, th.tensor([-0.2, -0.2, -0.2, 0.0, 0.0]))
    assert kondo_keep(adv, lp, 0.01).sum() == 3  # k = max(1, round(0.05)) = 1
    masked = kondo_keep(adv, lp, 1.0, mask=th.tensor([1.0, 1.0, 0.0, 1.0, 1.0]))
    assert masked.tolist() == [True, True, False, True, True]


def test_kondo_with_a_screening_mask_needs_gradients_only_on_kept_samples():
    adv = th.tensor([1.0, -1.0, 2.0, 0.5])
    lp = th.log(th.tensor([0.2, 0.3, 0.4, 0.1]))
    keep = kondo_keep(adv, lp, 0.5)
    full = grad_of(lambda x: kondo_loss(x, adv, 0.5), lp.tolist())
    kept_lp = lp[keep].clone().requires_grad_(True)
    kondo_loss(lp.index_put((keep.nonzero().flatten(),), kept_lp), adv, keep=keep).loss.backward()
    assert th.allclose(kept_lp.grad, full[keep]) and (full[~keep] == 0).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda: dg_loss(th.zeros(3), th.zeros(4)),
        lambda: ppo_loss(th.zeros(3), th.zeros(2), th.zeros(3)),
        lambda: pmpo_loss(th.zeros(3), th.zeros(3), th.zeros(3), mask=th.ones(2)),
        lambda: kondo_loss(th.zeros(3), th.zeros(3), keep=th.ones(4, dtype=th.bool)),
        lambda: dg_loss(th.zeros(3), th.zeros(3), eta=-1.0),
        lambda: ppo_loss(th.zeros(3), th.zeros(3), th.zeros(3), clip_range=0.0),
        lambda: kondo_keep(th.zeros(3), th.zeros(3), keep_fraction=0.0),
        lambda: pmpo_loss(th.zeros(3), th.zeros(3), th.zeros(3), alpha=1.5),
        lambda: dg_loss(th.zeros(3), th.zeros(3), surprisal=th.zeros(2)),
        lambda: episode_sum(th.zeros(3), th.zeros(2, dtype=th.long)),
    ],
)
def test_bad_inputs_raise(call):
    with pytest.raises(ValueError):
        call()


def test_losses_average_over_valid_samples():
    """Masked samples change nothing: same loss as dropping them."""
    lp, mu, adv = th.randn(6), th.randn(6), th.randn(6)
    mask = th.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    keep = mask > 0
    for fn in (lambda *a, **k: dg_loss(a[0], a[2], **k), reinforce_loss, ppo_loss, pmpo_loss):
        assert th.allclose(fn(lp, mu, adv, mask=mask).loss, fn(lp[keep], mu[keep], adv[keep]).loss)
