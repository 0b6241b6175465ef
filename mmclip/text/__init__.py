"""Radiology text tools: lexicon, NER with assertions, labeler, prompts, span alignment,
tokenizers."""

from mmclip.text.alignment import align_batch, align_spans, encode_with_spans
from mmclip.text.focus import FOCUS_ASSERTIONS, focus_mentions, focus_spans
from mmclip.text.labeler import LabelValue, RadiologyLabeler, label_report, label_reports
from mmclip.text.lexicon import (
    CHESTXRAY14_FINDINGS,
    CHEXPERT_FINDINGS,
    Concept,
    Lexicon,
    load_lexicon,
)
from mmclip.text.ner import EntityMention, RadiologyNER, extract_entities, report_text
from mmclip.text.prompts import build_prompt, report_prompt, zero_shot_prompts
from mmclip.text.sections import format_report, split_sections
from mmclip.text.tokenizer import default_tokenizer, load_tokenizer, train_wordpiece_tokenizer

__all__ = [
    "CHESTXRAY14_FINDINGS",
    "CHEXPERT_FINDINGS",
    "FOCUS_ASSERTIONS",
    "Concept",
    "EntityMention",
    "LabelValue",
    "Lexicon",
    "RadiologyLabeler",
    "RadiologyNER",
    "align_batch",
    "align_spans",
    "build_prompt",
    "default_tokenizer",
    "encode_with_spans",
    "extract_entities",
    "focus_mentions",
    "focus_spans",
    "format_report",
    "label_report",
    "label_reports",
    "load_lexicon",
    "load_tokenizer",
    "report_prompt",
    "report_text",
    "split_sections",
    "train_wordpiece_tokenizer",
    "zero_shot_prompts",
]
