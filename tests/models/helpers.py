"""Synthetic data for the model tests: drawn X-ray-like images, templated reports, spans."""

from __future__ import annotations

import math
import re

import torch
from torch import Tensor

from mmclip.batch import MMCLIPBatch, SampleKind

FINDINGS = ["pleural effusion", "pneumonia", "cardiomegaly", "pneumothorax", "atelectasis"]
SIDES = ["left", "right"]
TEMPLATES = [
    "There is a {side} {finding}. No other acute abnormality.",
    "Findings consistent with {side} {finding}.",
    "The lungs show a small {side} {finding} without change.",
    "Mild {side} {finding} is seen on this radiograph.",
]
PROMPTS = ["Findings consistent with {finding}.", "No acute cardiopulmonary abnormality."]
CORPUS = [t.format(side=s, finding=f) for t in TEMPLATES for s in SIDES for f in FINDINGS] + [
    p.format(finding=f) for p in PROMPTS for f in FINDINGS
]


def make_tokenizer(vocab_size: int = 300):
    """A small WordPiece tokenizer trained on the synthetic corpus (no network)."""
    from mmclip.models import build_wordpiece_tokenizer

    return build_wordpiece_tokenizer(CORPUS * 4, vocab_size=vocab_size)


def draw_image(finding: int, side: int, size: int, generator: torch.Generator) -> Tensor:
    """A grey-scale [1, size, size] image: two 'lungs', a blob whose place and shape depend
    on the finding and the side, and a global texture (orientation: finding, frequency:
    side) so that any visible subset of patches identifies the sample."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    lungs = torch.exp(-(((xx - 0.45) / 0.3) ** 2 + (yy / 0.6) ** 2)) + torch.exp(
        -(((xx + 0.45) / 0.3) ** 2 + (yy / 0.6) ** 2)
    )
    cx = (0.45 if side else -0.45) + 0.05 * math.cos(finding)
    cy = -0.5 + 0.25 * finding
    radius = 0.12 + 0.03 * finding
    blob = torch.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / radius**2))
    theta = finding * math.pi / 5 + side * math.pi / 10
    texture = 0.3 * torch.sin((6.0 + 3.0 * side) * (math.cos(theta) * xx + math.sin(theta) * yy))
    noise = 0.05 * torch.randn(size, size, generator=generator)
    return ((lungs * 0.6 + blob + texture + noise) * 2 - 1).clamp(-1.5, 1.5)[None]


def report(finding: int, side: int, template: int = 0) -> str:
    return TEMPLATES[template % len(TEMPLATES)].format(side=SIDES[side], finding=FINDINGS[finding])


def tokenize_with_spans(tokenizer, texts: list[str], max_length: int = 32):
    """Tokenise and map the entity phrases (findings) to token spans (CSR)."""
    enc = tokenizer(
        texts,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    offsets = [0]
    spans: list[list[int]] = []
    for row, text in enumerate(texts):
        mapping = enc["offset_mapping"][row].tolist()
        special = enc["special_tokens_mask"][row].tolist()
        for f in FINDINGS:
            for m in re.finditer(re.escape(f), text.lower()):
                toks = [
                    i
                    for i, (a, b) in enumerate(mapping)
                    if not special[i] and b > a and a < m.end() and b > m.start()
                ]
                if toks:
                    spans.append([toks[0], toks[-1] + 1])
        offsets.append(len(spans))
    return (
        enc["input_ids"].long(),
        enc["attention_mask"].long(),
        enc["special_tokens_mask"].long(),
        torch.tensor(offsets, dtype=torch.int64),
        torch.tensor(spans, dtype=torch.int64).reshape(-1, 2),
    )


def make_batch(
    tokenizer,
    kinds: list[SampleKind],
    image_size: int = 96,
    seed: int = 0,
    max_length: int = 32,
    fixed: bool = False,
) -> MMCLIPBatch:
    """A batch with the given sample kinds; sample i has finding i % 5 and side i % 2.

    ``fixed``: deterministic content (template 0, no image noise variation by seed).
    """
    g = torch.Generator().manual_seed(seed)
    samples = []  # (kind, image, text, prompt, label), drawn in the given order
    for i, kind in enumerate(kinds):
        finding, side = i % len(FINDINGS), (i // len(FINDINGS) + i) % 2
        template = 0 if fixed else int(torch.randint(len(TEMPLATES), (1,), generator=g))
        label = finding if kind in (SampleKind.IMAGE_PROMPT, SampleKind.TEXT_ONLY) else -1
        image = draw_image(finding, side, image_size, g) if kind != SampleKind.TEXT_ONLY else None
        text = prompt = None
        if kind in (SampleKind.PAIRED, SampleKind.TEXT_ONLY):
            text = report(finding, side, template)
        elif kind == SampleKind.IMAGE_PROMPT:
            text = PROMPTS[0].format(finding=FINDINGS[finding])
        if kind == SampleKind.TEXT_ONLY:
            prompt = PROMPTS[0].format(finding=FINDINGS[finding])
        samples.append((int(kind), image, text, prompt, label))
    samples.sort(key=lambda sample: sample[0])  # a batch is sorted by kind (stable)
    images = [s[1] for s in samples if s[1] is not None]
    texts = [s[2] for s in samples if s[2] is not None]
    prompts = [s[3] for s in samples if s[3] is not None]
    fields = {
        "kind": torch.tensor([s[0] for s in samples], dtype=torch.int64),
        "prompt_label": torch.tensor([s[4] for s in samples], dtype=torch.int64),
    }
    if images:
        fields["images"] = torch.stack(images)
    if texts:
        ids, attn, special, offsets, spans = tokenize_with_spans(tokenizer, texts, max_length)
        fields.update(
            input_ids=ids,
            attention_mask=attn,
            special_tokens_mask=special,
            span_offsets=offsets,
            spans=spans,
        )
    if prompts:
        enc = tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        fields["prompt_input_ids"] = enc["input_ids"].long()
        fields["prompt_attention_mask"] = enc["attention_mask"].long()
    return MMCLIPBatch(**fields)


MIXED = [
    SampleKind.PAIRED,
    SampleKind.PAIRED,
    SampleKind.IMAGE_PROMPT,
    SampleKind.IMAGE_ONLY,
    SampleKind.TEXT_ONLY,
    SampleKind.PAIRED,
    SampleKind.TEXT_ONLY,
    SampleKind.IMAGE_PROMPT,
]


def tiny_model(tokenizer, overrides=None, **fields):
    """A seeded, very small mmclip-tiny (32 px, width 64) for fast CPU tests.

    ``overrides`` are dotted config keys (``{"attmim.guide_scale": 12.5}``) on top of the
    small sizes; ``fields`` are top-level fields or section dicts, as in ``create_model``.
    """
    from mmclip.models import create_model

    torch.manual_seed(0)
    settings = {
        "vision.image_size": 32,
        "vision.width": 64,
        "vision.depth": 2,
        "vision.heads": 2,
        "text.vocab_size": 512,
        "text.hidden_size": 64,
        "text.intermediate_size": 128,
        "contrastive.embed_dim": 32,
        "attmim.decoder_width": 32,
        "attmim.decoder_heads": 2,
    }
    settings.update(overrides or {})
    return create_model("mmclip-tiny", tokenizer=tokenizer, overrides=settings, **fields)
