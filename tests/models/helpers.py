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
    images, image_index, texts, text_index, labels = [], [], [], [], []
    prompts, prompt_index = [], []
    for i, kind in enumerate(kinds):
        finding, side = i % len(FINDINGS), (i // len(FINDINGS) + i) % 2
        template = 0 if fixed else int(torch.randint(len(TEMPLATES), (1,), generator=g))
        labels.append(finding if kind in (SampleKind.IMAGE_PROMPT, SampleKind.TEXT_ONLY) else -1)
        if kind != SampleKind.TEXT_ONLY:
            images.append(draw_image(finding, side, image_size, g))
            image_index.append(i)
        if kind in (SampleKind.PAIRED, SampleKind.TEXT_ONLY):
            texts.append(report(finding, side, template))
            text_index.append(i)
        elif kind == SampleKind.IMAGE_PROMPT:
            texts.append(PROMPTS[0].format(finding=FINDINGS[finding]))
            text_index.append(i)
        if kind == SampleKind.TEXT_ONLY:
            prompts.append(PROMPTS[0].format(finding=FINDINGS[finding]))
            prompt_index.append(i)
    batch = MMCLIPBatch(kind=torch.tensor([int(k) for k in kinds], dtype=torch.int64))
    batch.prompt_label = torch.tensor(labels, dtype=torch.int64)
    if images:
        batch.images = torch.stack(images)
        batch.image_index = torch.tensor(image_index, dtype=torch.int64)
    if texts:
        ids, attn, special, offsets, spans = tokenize_with_spans(tokenizer, texts, max_length)
        batch.input_ids, batch.attention_mask, batch.special_tokens_mask = ids, attn, special
        batch.span_offsets, batch.spans = offsets, spans
        batch.text_index = torch.tensor(text_index, dtype=torch.int64)
    if prompts:
        enc = tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batch.prompt_input_ids = enc["input_ids"].long()
        batch.prompt_attention_mask = enc["attention_mask"].long()
        batch.prompt_index = torch.tensor(prompt_index, dtype=torch.int64)
    return batch


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
