"""Zero-shot classification and text retrieval of a user's own images, in one call.

The dataset-level evaluation (:mod:`mmclip.eval.zeroshot`, ``mmclip zeroshot --root``) needs
labelled records; these functions take images as they are (paths incl. DICOM, PIL, numpy,
tensors: the input contract of :mod:`mmclip.models.preprocess`) and return a table::

    import mmclip

    model = mmclip.create_model("mmclip-tiny", pretrained="demo")  # after `mmclip demo`
    table = mmclip.zeroshot(model, ["a.png", "b.dcm"], findings=["Pleural Effusion"])
    str(table)                      # the table as text: image × finding, probabilities
    table.to_dict()["a.png"]        # {"Pleural Effusion": 0.83}

``model.zeroshot(images, findings=…)`` is the same call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = [
    "ImageTextTable",
    "canonical_finding",
    "known_findings",
    "retrieve",
    "zeroshot",
]


@dataclass
class ImageTextTable:
    """Scores of images (rows) against findings or texts (columns).

    Attributes:
        rows: one name per image (its path, or ``image <i>``).
        columns: the findings or texts.
        values (array[N, F] float64): the scores.
        kind: what the values are, e.g. ``"probability"`` or ``"cosine similarity"``.
        note: one line on how to read them (printed under the table).
    """

    rows: list[str]
    columns: list[str]
    values: NDArray[np.float64]
    kind: str
    note: str = ""

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{row: {column: value}}`` (rows with the same name: the later one wins)."""
        return {
            r: {c: float(v) for c, v in zip(self.columns, row, strict=True)}
            for r, row in zip(self.rows, self.values, strict=True)
        }

    def ranked(self, row: int | str) -> list[tuple[str, float]]:
        """The columns of one row (index or name), best first, with their values."""
        index = self.rows.index(row) if isinstance(row, str) else row
        order = np.argsort(-self.values[index], kind="stable")
        return [(self.columns[j], float(self.values[index, j])) for j in order]

    def to_text(self, digits: int = 3) -> str:
        """An aligned plain-text table (what ``str(table)`` and the CLI print)."""
        header = ["image", *self.columns]
        body = [
            [r, *(f"{v:.{digits}f}" for v in row)]
            for r, row in zip(self.rows, self.values, strict=True)
        ]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
            for line in [header, *body]
        ]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def known_findings() -> list[str]:
    """The findings zero-shot has prompts for (``FINDING_PHRASES`` and ``No Finding``)."""
    from mmclip.data.records import NO_FINDING
    from mmclip.text.prompts import FINDING_PHRASES

    return sorted({*FINDING_PHRASES, NO_FINDING})


def canonical_finding(name: str) -> str:
    """The known finding ``name`` spells, case, spacing, ``_`` and ``-`` aside
    (:func:`mmclip.findings.finding_key`: ``"pleural effusion"`` → ``"Pleural Effusion"``).

    Raises:
        ValueError: no prompts for it; the message lists the known findings and ``prompts=``.
    """
    from mmclip.findings import match_finding

    known = known_findings()
    found = match_finding(name, known)
    if found is not None:
        return found
    raise ValueError(
        f"no zero-shot prompts for finding {name!r}; known: {', '.join(known)}. For anything "
        "else give your own texts (prompts=[...] in Python, --prompts on the command line)"
    )


def _row_names(images: Any, count: int) -> list[str]:
    items = images if isinstance(images, (list, tuple)) else [images]
    if len(items) == count:
        return [str(x) if isinstance(x, (str, Path)) else f"image {i}" for i, x in enumerate(items)]
    return [f"image {i}" for i in range(count)]


def _image_embeddings(model: Any, images: Any) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model.encode_image(images).float().cpu()


def zeroshot(
    model: Any,
    images: Any,
    findings: Sequence[str] | None = None,
    *,
    prompts: Sequence[str] | None = None,
    mode: str = "multilabel",
    names: Sequence[str] | None = None,
) -> ImageTextTable:
    """Zero-shot probabilities of the images, per finding or over the given texts.

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` (put in eval mode here).
        images: one image, a list or a 4-D batch, in any form of
            :mod:`mmclip.models.preprocess` (paths incl. DICOM, PIL, numpy, tensors).
        findings: finding names with prompts (:func:`known_findings`; case-insensitive).
            ``mode="multilabel"``: per finding, the softmax between its positive and
            negative prompt ensembles (each value on its own, as ``mmclip zeroshot --root``);
            ``mode="multiclass"``: a softmax over the findings' positive ensembles (a row
            sums to 1).
        prompts: instead of ``findings``, your own texts: a softmax over them (a row sums
            to 1), with the model's logit scale.
        mode: ``"multilabel"`` or ``"multiclass"`` (findings only).
        names: row names (default: the paths, else ``image <i>``).

    Returns:
        :class:`ImageTextTable` of probabilities, images × findings (or prompts).

    Raises:
        ValueError: neither or both of ``findings`` and ``prompts``, an unknown finding, an
            empty text, or an image outside the input contract.
    """
    from .embed import encode_texts
    from .zeroshot import build_classifier, multiclass_probabilities, zero_shot_probabilities

    if (findings is None) == (prompts is None):
        raise ValueError("give findings=[...] (known finding names) or prompts=[...] (texts)")
    if mode not in ("multilabel", "multiclass"):
        raise ValueError(f"mode must be 'multilabel' or 'multiclass'; got {mode!r}")
    columns = [canonical_finding(f) for f in findings] if findings is not None else None
    if not (columns if columns is not None else list(prompts or ())):
        raise ValueError("no finding or prompt given")
    image_embeds = _image_embeddings(model, images)
    scale = float(model.logit_scale().detach())
    if columns is not None:
        classifier = build_classifier(model, columns).float().cpu()
        if mode == "multilabel":
            probs = zero_shot_probabilities(image_embeds, classifier, scale)
            note = (
                "probability of each finding on its own (positive vs negative prompts); "
                "a row need not sum to 1"
            )
        else:
            probs = multiclass_probabilities(image_embeds, classifier[:, 1], scale)
            note = "softmax over the findings: each row sums to 1"
    else:
        assert prompts is not None
        columns = list(prompts)
        text_embeds = encode_texts(model, columns)
        probs = multiclass_probabilities(image_embeds, text_embeds, scale)
        note = "softmax over the prompts: each row sums to 1"
    rows = list(names) if names is not None else _row_names(images, image_embeds.shape[0])
    if len(rows) != image_embeds.shape[0]:
        raise ValueError(f"{len(rows)} names for {image_embeds.shape[0]} images")
    return ImageTextTable(rows, columns, probs.double().numpy(), "probability", note)


def retrieve(
    model: Any, images: Any, texts: Sequence[str], names: Sequence[str] | None = None
) -> ImageTextTable:
    """Cosine similarity of each image with each text in the joint space (image → text
    retrieval; :meth:`ImageTextTable.ranked` gives one image's texts, best first).

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` (put in eval mode here).
        images: as in :func:`zeroshot`.
        texts: the candidate texts (reports, findings, prompts).
        names: row names (default: the paths, else ``image <i>``).

    Returns:
        :class:`ImageTextTable` of cosine similarities in [-1, 1], images × texts.
    """
    from .embed import encode_texts

    texts = list(texts)
    if not texts:
        raise ValueError("no text given")
    image_embeds = _image_embeddings(model, images)
    similarity = image_embeds @ encode_texts(model, texts).t()
    rows = list(names) if names is not None else _row_names(images, image_embeds.shape[0])
    if len(rows) != image_embeds.shape[0]:
        raise ValueError(f"{len(rows)} names for {image_embeds.shape[0]} images")
    note = "cosine similarity in the joint space: higher = a better match"
    return ImageTextTable(rows, texts, similarity.double().numpy(), "cosine similarity", note)
