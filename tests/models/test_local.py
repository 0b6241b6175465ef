"""The local token–patch alignment term: reference equality, gradients, planted lesions."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from mmclip.models import LocalAlignmentLoss, LocalConfig, local_similarity
from mmclip.models.contrastive import contrastive_targets
from mmclip.models.local import compact_tokens
from mmclip.ops import cross_modal_attention_score


def _unit(*shape: int, generator: torch.Generator) -> Tensor:
    return F.normalize(torch.randn(*shape, generator=generator), dim=-1)


def _focus_weights(generator: torch.Generator) -> Tensor:
    """[5, 6] weights: padding (0) interleaved with focus tokens of varying weight."""
    weight = torch.zeros(5, 6)
    weight[0, [1, 4]] = torch.tensor([1.0, 3.0])
    weight[1, 0] = 2.0
    weight[2, [0, 2, 3, 5]] = torch.tensor([0.5, 1.0, 1.5, 4.0])
    weight[3, 5] = 1.0
    weight[4, 1:4] = torch.rand(3, generator=generator) + 0.1
    return weight


def _naive_similarity(q: Tensor, weight: Tensor, k: Tensor, scale: float, kind: str) -> Tensor:
    """The module docstring's formulas, one (text, image, token) at a time, in float64."""
    q, weight, k = q.double(), weight.double(), k.double()
    out = torch.zeros(q.shape[0], k.shape[0], dtype=torch.float64)
    for i in range(q.shape[0]):
        for j in range(k.shape[0]):
            total = 0.0
            norm = 0.0
            for t in range(q.shape[1]):
                w = float(weight[i, t])
                if w <= 0:
                    continue
                logits = k[j] @ q[i, t]  # [P]
                if kind == "attention":
                    attn = torch.softmax(scale * logits, dim=0)
                    context = (attn[:, None] * k[j]).sum(dim=0)
                    r = float(F.cosine_similarity(context, q[i, t], dim=0))
                else:
                    r = float(logits.max())
                total += w * r
                norm += w
            out[i, j] = total / norm
    return out


@pytest.mark.parametrize("kind", ["attention", "max"])
def test_local_similarity_matches_a_naive_loop_across_chunks(kind: str) -> None:
    g = torch.Generator().manual_seed(0)
    n_text, n_img, n_tok, n_patch, dim = 5, 3, 6, 7, 8
    q = _unit(n_text, n_tok, dim, generator=g)
    k = _unit(n_img, n_patch, dim, generator=g)
    weight = _focus_weights(g)
    scale = 4.0
    expected = _naive_similarity(q, weight, k, scale, kind)
    # at most 4 focus tokens per text: one text per chunk, so 5 chunks
    one_text = n_img * 4 * n_patch
    chunked = local_similarity(q, weight, k, scale, kind, chunk_elements=one_text)
    two_texts = local_similarity(q, weight, k, scale, kind, chunk_elements=2 * one_text)
    whole = local_similarity(q, weight, k, scale, kind)
    assert chunked.shape == (n_text, n_img)
    assert chunked.dtype == torch.float32
    torch.testing.assert_close(chunked.double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(two_texts, chunked, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(whole, chunked, atol=1e-6, rtol=1e-6)


def test_local_similarity_ignores_the_content_of_zero_weight_tokens() -> None:
    g = torch.Generator().manual_seed(1)
    q = _unit(5, 6, 8, generator=g)
    k = _unit(3, 7, 8, generator=g)
    weight = _focus_weights(g)
    changed = torch.where((weight > 0)[..., None], q, _unit(5, 6, 8, generator=g))
    for kind in ("attention", "max"):
        a = local_similarity(q, weight, k, 3.0, kind)
        b = local_similarity(changed, weight, k, 3.0, kind)
        torch.testing.assert_close(a, b)
    # and a focus token's content does matter
    other = q.clone()
    other[0, 4] = -other[0, 4]
    moved = local_similarity(other, weight, k, 3.0)
    assert not torch.allclose(moved[0], local_similarity(q, weight, k, 3.0)[0])


def test_local_similarity_rejects_an_unknown_kind() -> None:
    q = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="mean"):
        local_similarity(q, torch.ones(2, 3), torch.randn(2, 5, 4), 1.0, kind="mean")


def test_compact_tokens_keeps_exactly_the_positive_tokens_in_order() -> None:
    g = torch.Generator().manual_seed(2)
    q = torch.randn(5, 6, 4, generator=g)
    weight = _focus_weights(g)
    weight[3, 2] = -1.0  # negative weights are dropped too
    q_f, w_f = compact_tokens(q, weight)
    n_focus = int((weight > 0).sum(dim=1).max())
    assert q_f.shape == (5, n_focus, 4)
    assert w_f.shape == (5, n_focus)
    for row in range(5):
        keep = (weight[row] > 0).nonzero().flatten()
        count = keep.numel()
        assert torch.equal(q_f[row, :count], q[row, keep])
        assert torch.equal(w_f[row, :count], weight[row, keep])
        assert torch.all(w_f[row, count:] == 0)


def test_compact_tokens_of_no_focus_at_all_is_empty() -> None:
    q_f, w_f = compact_tokens(torch.randn(3, 4, 2), torch.zeros(3, 4))
    assert q_f.shape == (3, 0, 2)
    assert w_f.shape == (3, 0)


def _loss_inputs(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(4, 5, 8, generator=g).requires_grad_()
    k = torch.randn(4, 6, 8, generator=g).requires_grad_()
    weight = torch.zeros(4, 5)
    weight[0, [0, 2]] = 1.0
    weight[1, 1] = 2.0
    # row 2: no focus token (a normal report)
    weight[3, [3, 4]] = torch.tensor([1.0, 0.5])
    return q, weight, k


def test_local_loss_gradients_reach_q_k_and_both_temperatures() -> None:
    q, weight, k = _loss_inputs(3)
    loss_fn = LocalAlignmentLoss(LocalConfig(kind="attention"))
    loss = loss_fn(q, weight, k)
    assert loss.ndim == 0 and torch.isfinite(loss) and float(loss.detach()) > 0
    loss.backward()
    assert q.grad is not None and k.grad is not None
    for grad in (q.grad, k.grad, loss_fn.logit_scale.grad, loss_fn.attention_logit_scale.grad):
        assert grad is not None
        assert torch.isfinite(grad).all()
        assert float(grad.abs().sum()) > 0
    # the text without focus and its image are left out of the term
    assert torch.all(q.grad[2] == 0)
    assert torch.all(k.grad[2] == 0)
    # tokens without weight get no gradient, focus tokens do
    assert torch.all(q.grad[weight == 0] == 0)
    assert torch.all(q.grad[weight > 0].abs().sum(dim=-1) > 0)
    # every patch of an image in the term gets gradient through the softmax
    assert torch.all(k.grad[[0, 1, 3]].abs().sum(dim=-1) > 0)


def test_local_loss_with_fixed_temperatures_registers_buffers() -> None:
    loss_fn = LocalAlignmentLoss(
        LocalConfig(
            kind="attention",
            init_temperature=0.5,
            init_attention_temperature=0.25,
            learn_temperature=False,
        )
    )
    assert not list(loss_fn.parameters())
    assert set(dict(loss_fn.named_buffers())) == {"logit_scale", "attention_logit_scale"}
    assert float(loss_fn.scale().detach()) == pytest.approx(2.0)
    assert float(loss_fn.attention_scale().detach()) == pytest.approx(4.0)


def test_the_mil_kind_has_only_the_attention_scale() -> None:
    loss_fn = LocalAlignmentLoss(LocalConfig(kind="mil", init_attention_temperature=0.25))
    assert set(dict(loss_fn.named_parameters())) == {"attention_logit_scale"}
    with pytest.raises(ValueError, match="mil"):
        loss_fn.scale()


@pytest.mark.parametrize("n_focus_rows", [0, 1])
def test_local_loss_with_fewer_than_two_focus_rows_is_an_attached_zero(n_focus_rows: int) -> None:
    g = torch.Generator().manual_seed(4)
    q = torch.randn(3, 4, 8, generator=g).requires_grad_()
    k = torch.randn(3, 5, 8, generator=g).requires_grad_()
    weight = torch.zeros(3, 4)
    weight[:n_focus_rows, 0] = 1.0
    loss_fn = LocalAlignmentLoss()
    loss = loss_fn(q, weight, k, torch.tensor([1, 2, 3]))
    assert float(loss.detach()) == 0.0
    assert loss.dtype == torch.float32
    assert loss.requires_grad
    loss.backward()
    assert q.grad is not None and torch.all(q.grad == 0)
    assert k.grad is not None and torch.all(k.grad == 0)
    for name, param in loss_fn.named_parameters():
        assert param.grad is not None and float(param.grad) == 0.0, name


def _manual_loss(
    q: Tensor, weight: Tensor, k: Tensor, labels: Tensor | None, loss_fn: LocalAlignmentLoss
) -> Tensor:
    valid = (weight > 0).any(dim=1)
    sim = local_similarity(
        F.normalize(q[valid], dim=-1),
        weight[valid],
        F.normalize(k[valid], dim=-1),
        float(loss_fn.attention_scale().detach()),
        loss_fn.config.kind,
    )
    logits = float(loss_fn.scale().detach()) * sim
    targets = contrastive_targets(None if labels is None else labels[valid], logits.shape[0], "cpu")
    loss_t = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    loss_i = -(targets.t() * logits.t().log_softmax(dim=1)).sum(dim=1).mean()
    return (loss_t + loss_i) / 2


@pytest.mark.parametrize("kind", ["attention", "max"])
def test_local_loss_is_symmetric_infonce_over_the_focus_rows(kind: str) -> None:
    q, weight, k = _loss_inputs(5)
    labels = torch.tensor([7, 9, 7, 7])  # row 2 (no focus) is dropped with its label
    loss_fn = LocalAlignmentLoss(LocalConfig(kind=kind, init_attention_temperature=0.3))
    with torch.no_grad():
        got = loss_fn(q, weight, k, labels)
        expected = _manual_loss(q, weight, k, labels, loss_fn)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # labels 0 and 3 are equal among the kept rows: label-aware targets differ from none
    with torch.no_grad():
        without = loss_fn(q, weight, k)
    assert abs(float(got) - float(without)) > 1e-4


def test_same_label_pairs_are_not_negatives() -> None:
    """Texts 0 and 1 (same disease kind) each show best in the *other's* image: as
    negatives that costs a lot, as positives of each other it does not."""
    g = torch.Generator().manual_seed(6)
    q = F.normalize(torch.randn(3, 2, 8, generator=g), dim=-1)
    k = torch.randn(3, 4, 8, generator=g)
    k[1, :2], k[0, :2], k[2, :2] = q[0], q[1], q[2]
    weight = torch.ones(3, 2)
    loss_fn = LocalAlignmentLoss()
    with torch.no_grad():
        sim = local_similarity(
            q, weight, F.normalize(k, dim=-1), float(loss_fn.attention_scale().detach())
        )
        assert float(sim[0, 1]) > float(sim[0, 0]) and float(sim[1, 0]) > float(sim[1, 1])
        plain = float(loss_fn(q, weight, k))
        same = float(loss_fn(q, weight, k, torch.tensor([4, 4, 1])))
        unknown = float(loss_fn(q, weight, k, torch.tensor([-1, -1, 1])))
        other = float(loss_fn(q, weight, k, torch.tensor([4, 5, 4])))
        blind = float(LocalAlignmentLoss(label_aware=False)(q, weight, k, torch.tensor([4, 4, 1])))
    assert same < plain - 0.3
    assert unknown == pytest.approx(plain, abs=1e-6)  # -1 = unknown: still negatives
    assert blind == pytest.approx(plain, abs=1e-6)
    assert other != pytest.approx(plain, abs=1e-4)  # labels 0 and 2 are read too


@pytest.mark.parametrize(
    ("q_shape", "w_shape", "k_shape", "pattern"),
    [
        ((4, 8), (4, 5), (4, 6, 8), r"\(4, 8\) and \(4, 6, 8\)"),
        ((4, 5, 8), (4, 5), (3, 6, 8), r"\(4, 5, 8\) and \(3, 6, 8\)"),
        ((4, 5, 8), (4, 5), (4, 6, 7), r"\(4, 5, 8\) and \(4, 6, 7\)"),
        ((4, 5, 8), (4, 6), (4, 6, 8), r"\(4, 5\); got \(4, 6\)"),
    ],
)
def test_local_loss_rejects_bad_shapes_naming_them(
    q_shape: tuple[int, ...], w_shape: tuple[int, ...], k_shape: tuple[int, ...], pattern: str
) -> None:
    loss_fn = LocalAlignmentLoss()
    with pytest.raises(ValueError, match=pattern):
        loss_fn(torch.randn(q_shape), torch.ones(w_shape), torch.randn(k_shape))


def test_local_loss_rejects_bad_configs() -> None:
    with pytest.raises(ValueError, match="'mean'"):
        LocalAlignmentLoss(LocalConfig(kind="mean"))
    with pytest.raises(ValueError, match="init_temperature"):
        LocalAlignmentLoss(LocalConfig(init_temperature=0.0))
    with pytest.raises(ValueError, match="init_attention_temperature"):
        LocalAlignmentLoss(LocalConfig(init_attention_temperature=-1.0))


# ---------------------------------------------------------------- planted lesion patches
N_FINDINGS, N_PATCH, FEAT, EMBED, N_TOK = 8, 16, 32, 32, 3


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny tensors: a single intra-op thread is fastest (and immune to a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _lesion_batch(
    findings: Tensor, lesion_vectors: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Patch features (fresh noise, one lesion patch at a random place carrying its
    finding's vector), the lesion positions, focus weights (one focus token per text at a
    random place) and the focus token positions."""
    n = findings.shape[0]
    patches = torch.randn(n, N_PATCH, FEAT, generator=generator) / math.sqrt(FEAT)
    where = torch.randint(N_PATCH, (n,), generator=generator)
    patches[torch.arange(n), where] = lesion_vectors[findings]
    focus_at = torch.randint(N_TOK, (n,), generator=generator)
    weight = torch.zeros(n, N_TOK)
    weight[torch.arange(n), focus_at] = 1.0
    return patches, where, weight, focus_at


def _texts(findings: Tensor, focus_at: Tensor, tokens: Tensor, filler: Tensor) -> Tensor:
    """[n, N_TOK, EMBED]: filler tokens (weight 0) with the finding token at ``focus_at``."""
    n = findings.shape[0]
    q = filler.expand(n, N_TOK, EMBED).clone()
    q[torch.arange(n), focus_at] = tokens[findings]
    return q


def _pointing_accuracy(
    proj: torch.nn.Linear, lesion_vectors: Tensor, tokens: Tensor, filler: Tensor, scale: float
) -> float:
    """Share of unseen images whose token → patch attention (the guidance) peaks on the
    lesion patch."""
    g = torch.Generator().manual_seed(99)
    hits = total = 0
    with torch.no_grad():
        for _ in range(4):
            findings = torch.randperm(N_FINDINGS, generator=g)
            patches, where, weight, focus_at = _lesion_batch(findings, lesion_vectors, g)
            q = F.normalize(_texts(findings, focus_at, tokens, filler), dim=-1)
            k = F.normalize(proj(patches), dim=-1)
            scores = cross_modal_attention_score(q, k, weight, scale)
            hits += int((scores.argmax(dim=1) == where).sum())
            total += findings.shape[0]
    return hits / total


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("kind", "temperature"), [("attention", 2.0), ("mil", 0.25)])
def test_local_loss_learns_to_point_at_a_planted_lesion_patch(
    kind: str, temperature: float
) -> None:
    """Each image is noise patches plus one lesion patch, at a random place, carrying a
    vector specific to its finding; its text has one focus token, fixed and random per
    finding, among weight-0 filler. A linear projection of the patch features, trained by
    the local term alone on fresh batches, must learn to send each lesion vector to its
    finding's token; the guidance's attention then peaks on the lesion of unseen images."""
    torch.manual_seed(0)
    lesion_vectors = F.normalize(torch.randn(N_FINDINGS, FEAT), dim=-1)
    tokens = F.normalize(torch.randn(N_FINDINGS, EMBED), dim=-1)
    filler = F.normalize(torch.randn(EMBED), dim=-1)
    proj = torch.nn.Linear(FEAT, EMBED, bias=False)
    # a soft initial token → patch softmax, so that every lesion gets a gradient at first
    loss_fn = LocalAlignmentLoss(LocalConfig(kind=kind, init_attention_temperature=temperature))
    before = _pointing_accuracy(
        proj, lesion_vectors, tokens, filler, float(loss_fn.attention_scale().detach())
    )
    optimizer = torch.optim.Adam([*proj.parameters(), *loss_fn.parameters()], lr=0.05)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(40):
        findings = torch.randperm(N_FINDINGS, generator=g)
        patches, _, weight, focus_at = _lesion_batch(findings, lesion_vectors, g)
        loss = loss_fn(_texts(findings, focus_at, tokens, filler), weight, proj(patches))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    scale = float(loss_fn.attention_scale().detach())
    after = _pointing_accuracy(proj, lesion_vectors, tokens, filler, scale)
    chance = 1.0 / N_PATCH
    assert before <= 3 * chance  # the untrained projection does not find the lesions
    assert after >= 0.8, (before, after)
    assert sum(losses[-5:]) < sum(losses[:5])
    with torch.no_grad():  # it found them by mapping each lesion vector onto its token
        aligned = F.cosine_similarity(proj(lesion_vectors), tokens, dim=-1)
    assert float(aligned.min()) > 0.5


# ---------------------------------------------------------------------- MIL kind
def _naive_mil(q: Tensor, weight: Tensor, k: Tensor, positives: Tensor, scale: float) -> Tensor:
    """-log of the softmax mass on positive images' patches, per focus token, in float64."""
    q, weight, k = q.double(), weight.double(), k.double()
    per_text = []
    for i in range(q.shape[0]):
        total = norm = 0.0
        for t in range(q.shape[1]):
            w = float(weight[i, t])
            if w <= 0:
                continue
            logits = scale * (k @ q[i, t])  # [Bi, P]
            prob = torch.softmax(logits.flatten(), dim=0).reshape(logits.shape)
            total += w * -math.log(float(prob[positives[i]].sum()))
            norm += w
        per_text.append(total / norm)
    return torch.tensor(per_text, dtype=torch.float64).mean()


def test_mil_token_loss_matches_a_naive_loop_across_chunks() -> None:
    from mmclip.models.local import mil_token_loss

    g = torch.Generator().manual_seed(3)
    q = _unit(5, 6, 8, generator=g)
    k = _unit(5, 7, 8, generator=g)
    weight = _focus_weights(g)
    positives = torch.eye(5, dtype=torch.bool)
    positives[0, 3] = positives[3, 0] = True
    expected = _naive_mil(q, weight, k, positives, 4.0)
    for chunk in (5 * 4 * 7, 1 << 24):
        got = mil_token_loss(q, weight, k, positives, 4.0, chunk_elements=chunk)
        torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)


def test_mil_loss_module_uses_label_positives_and_trains_the_attention_scale() -> None:
    g = torch.Generator().manual_seed(4)
    q = torch.randn(4, 5, 8, generator=g, requires_grad=True)
    k = torch.randn(4, 6, 8, generator=g, requires_grad=True)
    weight = torch.zeros(4, 5)
    weight[:, 1:3] = 1.0
    loss_fn = LocalAlignmentLoss(LocalConfig(kind="mil", init_attention_temperature=0.25))
    labels = torch.tensor([7, 7, -1, 2])
    loss = loss_fn(q, weight, k, labels)
    positives = contrastive_targets(labels, 4, torch.device("cpu")) > 0
    expected = _naive_mil(
        F.normalize(q.detach(), dim=-1), weight, F.normalize(k.detach(), dim=-1), positives, 4.0
    )
    torch.testing.assert_close(loss.double(), expected, atol=1e-5, rtol=1e-5)
    loss.backward()
    assert loss_fn.attention_logit_scale.grad is not None
    assert float(loss_fn.attention_logit_scale.grad.abs()) > 0
    assert q.grad is not None and float(q.grad.abs().sum()) > 0
