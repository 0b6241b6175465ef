"""Seeded synthetic chest X-rays with known findings, lesion masks and templated reports.

The default data of ``mmclip demo`` and of most tests: no download, no licence, and the lesion
masks say where the pathology is, so one can measure whether AttMIM masks it.

Image convention (as on a PA radiograph): the patient's **right** is on the image's **left**
(columns ``x < W/2``); dense tissue is bright. Each image shows a thorax (soft tissue), two
lungs, the heart, the diaphragm domes, ribs, spine / mediastinum and clavicles, plus zero or
more findings drawn at known places:

========================  ===========================================  ===========
finding                   drawn as                                     mask bit
========================  ===========================================  ===========
``consolidation``         irregular opacity in one lung zone           ``1``
``effusion``              fluid with a meniscus at a costophrenic angle ``2``
``cardiomegaly``          heart wider than half the thorax             ``4``
``pneumothorax``          lateral / apical lucency without markings    ``8``
``nodule``                small round opacity                          ``16``
========================  ===========================================  ===========

The mask PNG stores the OR of the bits (0 = no lesion). The report names each finding with
its laterality and zone, negates a random selection of absent findings ("No pneumothorax or
pleural effusion."), and sometimes hedges a faint finding ("... cannot be excluded.", label
``-1``). Every sample ``i`` uses its own generator seeded with ``(seed, i)``, so a dataset is
the same whatever ``n`` and in whatever order it is written.

Speed: ~2-4 ms per 256 px image on one core (see ``bench/test_data.py``).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from mmclip.data.records import XrayRecord, patient_split
from mmclip.data.synthetic_reports import templated_report
from mmclip.io import atomic_save_image, atomic_write_text

__all__ = [
    "FINDING_BITS",
    "FINDING_LABELS",
    "SYNTHETIC_FINDINGS",
    "SyntheticSample",
    "generate",
    "render_sample",
    "write_dataset",
]

logger = logging.getLogger(__name__)

SYNTHETIC_FINDINGS: tuple[str, ...] = (
    "consolidation",
    "effusion",
    "cardiomegaly",
    "pneumothorax",
    "nodule",
)
"""Findings the generator can draw."""

FINDING_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(SYNTHETIC_FINDINGS)}
"""Bit of each finding in the lesion mask PNG."""

FINDING_LABELS: dict[str, str] = {
    "consolidation": "Consolidation",
    "effusion": "Pleural Effusion",
    "cardiomegaly": "Cardiomegaly",
    "pneumothorax": "Pneumothorax",
    "nodule": "Lung Lesion",
}
"""CheXpert label name of each synthetic finding."""

# Probability that a finding is present in an image (independently); about 40 % are normal.
_PREVALENCE = {
    "consolidation": 0.22,
    "effusion": 0.18,
    "cardiomegaly": 0.15,
    "pneumothorax": 0.08,
    "nodule": 0.10,
}
_UNCERTAIN_PROB = 0.08
_ZONES = ("upper", "middle", "lower")
_ZONE_Y = {"upper": 0.30, "middle": 0.47, "lower": 0.62}


@dataclass
class SyntheticSample:
    """One generated sample.

    Attributes:
        image: uint8 array [H, W], grey-scale radiograph.
        mask: uint8 array [H, W], OR of :data:`FINDING_BITS` (0 = no lesion).
        report: templated report text (FINDINGS and IMPRESSION sections).
        labels: CheXpert-named labels (1 / 0 / -1) of the findings the report speaks of.
        findings: finding → ``{"side": ..., "zone": ..., "uncertain": ...}`` of drawn findings.
    """

    image: NDArray[np.uint8]
    mask: NDArray[np.uint8]
    report: str
    labels: dict[str, int]
    findings: dict[str, dict[str, object]] = field(default_factory=dict)


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Column coordinates x in [-1, 1] (shape [W]) and row coordinates y in [0, 1] ([H])."""
    x = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y = np.linspace(0.0, 1.0, size, dtype=np.float32)
    return x, y


def _soft(a: NDArray[np.float32], sharpness: float) -> NDArray[np.float32]:
    """Soft step ``clip(a * sharpness, 0, 1)`` in place-friendly form."""
    np.multiply(a, sharpness, out=a)
    np.clip(a, 0.0, 1.0, out=a)
    return a


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> NDArray[np.float32]:
    """Band-limited noise [size, size] in about [-1, 1]: random cells upsampled bilinearly."""
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    img = Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def _side_sign(side: str) -> float:
    """Image-x sign of a patient side: patient right is image left (x < 0)."""
    return -1.0 if side == "right" else 1.0


def _choose_findings(rng: np.random.Generator) -> dict[str, dict[str, object]]:
    findings: dict[str, dict[str, object]] = {}
    for name in SYNTHETIC_FINDINGS:
        if rng.random() >= _PREVALENCE[name]:
            continue
        if name == "cardiomegaly":
            findings[name] = {"uncertain": False}
            continue
        info: dict[str, object] = {
            "side": "right" if rng.random() < 0.5 else "left",
            "zone": _ZONES[int(rng.integers(3))],
            "uncertain": bool(rng.random() < _UNCERTAIN_PROB),
        }
        if name == "effusion":
            info["zone"] = "lower"
            info["size"] = "small" if rng.random() < 0.6 else "moderate"
        if name == "pneumothorax":
            info["zone"] = "upper"
        if name == "nodule":
            info["mm"] = int(rng.integers(6, 25))
        findings[name] = info
    return findings


def render_sample(rng: np.random.Generator, size: int = 256) -> SyntheticSample:
    """Draw one radiograph, its lesion mask, report and labels from ``rng``."""
    findings = _choose_findings(rng)
    x, y = _grid(size)
    j = rng.normal(0.0, 1.0, 16).astype(np.float32)  # anatomy jitter

    # --- thorax soft tissue: a wide ellipse, open at the bottom (abdomen) -----------------
    body_rx = 0.92 + 0.03 * j[0]
    ex = (x / body_rx) ** 2
    ey = (np.minimum(y - 0.62, 0.0) / 0.60) ** 2  # rounded shoulders, straight flanks below
    img = _soft(1.0 - (ex[None, :] + ey[:, None]), 6.0)
    img *= 0.46
    img += 0.04

    # --- lungs: two rounded shapes narrowing towards the apex, cut by the diaphragm ------
    top = 0.12 + 0.01 * j[1]
    dome = 0.70 + 0.02 * j[2]
    taper = np.sqrt(np.clip((y - top) / (dome - top), 0.0, 1.0))  # [H]
    lungs = np.zeros((size, size), dtype=np.float32)
    heart_cx = 0.10 + 0.02 * j[3]
    lung_masks: dict[str, NDArray[np.float32]] = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        cx = sign * (0.43 + 0.02 * j[4])
        rx = (0.30 + 0.015 * j[5]) * (0.12 + 0.88 * taper)  # [H]
        dx = (x - cx)[None, :] / np.maximum(rx, 1e-3)[:, None]
        # Diaphragm dome per side: highest in the middle of the hemithorax, lower laterally.
        side_dome = dome + (0.025 if side == "left" else 0.0)
        dome_y = side_dome - 0.07 * (1.0 - np.clip(((x - cx) / 0.32) ** 2, 0.0, 1.0))  # [W]
        inside = 1.0 - dx**2
        below = (dome_y[None, :] - y[:, None]) * 40.0
        np.minimum(inside * 8.0, below, out=inside)
        inside *= y[:, None] > top
        lung = np.clip(inside, 0.0, 1.0)
        lung_masks[side] = lung
        lungs += lung
    np.clip(lungs, 0.0, 1.0, out=lungs)
    img -= 0.28 * lungs

    # --- lung markings (vessels) and ribs inside the lungs -------------------------------
    markings = _smooth_noise(rng, size, max(size // 10, 4))
    # Vessels fade towards the periphery: weight by distance from the hilum.
    hilum = np.exp(-(np.abs(x) / 0.55))[None, :] * 0.06
    phase_y = y[:, None] * (9.0 + 0.3 * j[6]) - 1.6 * (x**2)[None, :] + j[7]
    ribs = np.cos(phase_y * (2.0 * np.pi))
    _soft(ribs - 0.65, 4.0)
    texture = markings * hilum + 0.06 * ribs
    ptx = findings.get("pneumothorax")
    ptx_region: NDArray[np.float32] | None = None
    if ptx is not None:
        sign = _side_sign(str(ptx["side"]))
        lung = lung_masks[str(ptx["side"])]
        # Lucent rim along the lateral and apical edge: where the lung ends within a band.
        depth = 0.10 + 0.04 * rng.random() if not ptx["uncertain"] else 0.06
        edge_x = sign * (0.43 + 0.30) - sign * depth * 2.0
        lateral = (x * sign - edge_x * sign)[None, :] * 30.0
        apical = (top + depth - y)[:, None] * 30.0
        rim = np.clip(np.maximum(lateral, apical), 0.0, 1.0) * lung
        ptx_region = rim
        texture = texture * (1.0 - rim)
        img -= 0.10 * rim  # no markings and darker
    img += texture * lungs

    # --- heart: bright ellipse right of the midline (patient's left), wider if enlarged ---
    cardio = findings.get("cardiomegaly")
    heart_rx = (0.24 + 0.015 * j[8]) * (1.5 if cardio is not None else 1.0)
    heart_cy = 0.60 + 0.01 * j[9]
    hx = ((x - heart_cx) / heart_rx) ** 2
    hy = ((y - heart_cy) / 0.17) ** 2
    heart = _soft(1.0 - (hx[None, :] + hy[:, None]), 2.5)
    img += 0.28 * heart
    # Mediastinum: a central band above the heart.
    med_x = np.exp(-((x / 0.16) ** 4))  # [W]
    med_y = np.clip((heart_cy - y) / 0.1, 0.0, 1.0) * (y > 0.10)  # [H]
    img += 0.16 * (med_y[:, None] * med_x[None, :])

    # --- spine / mediastinum and clavicles ------------------------------------------------
    spine_x = np.exp(-((x / 0.085) ** 4))  # [W]
    vert = 0.85 + 0.15 * np.cos(y * (2.0 * np.pi * 17.0))  # [H]
    img += 0.14 * (vert[:, None] * spine_x[None, :]) * (y[:, None] > 0.05)
    clav_y = 0.17 + 0.06 * np.abs(x) ** 1.5 + 0.005 * j[10]
    clav = np.exp(-(((y[:, None] - clav_y[None, :]) / 0.018) ** 2)) * (np.abs(x) < 0.6)[None, :]
    img += 0.12 * clav

    # --- findings with their masks ---------------------------------------------------------
    mask = np.zeros((size, size), dtype=np.uint8)
    cons = findings.get("consolidation")
    if cons is not None:
        sign = _side_sign(str(cons["side"]))
        cx = sign * (0.45 + 0.06 * rng.standard_normal())
        cy = _ZONE_Y[str(cons["zone"])] + 0.03 * rng.standard_normal()
        rx, ry = 0.14 + 0.04 * rng.random(), 0.09 + 0.03 * rng.random()
        blob = 1.0 - (((x - cx) / rx) ** 2)[None, :] - (((y - cy) / ry) ** 2)[:, None]
        blob += 0.35 * _smooth_noise(rng, size, max(size // 16, 4))
        blob = _soft(blob, 3.0) * lung_masks[str(cons["side"])]
        img += (0.10 if cons["uncertain"] else 0.24) * blob
        mask[blob > 0.25] |= FINDING_BITS["consolidation"]
    eff = findings.get("effusion")
    if eff is not None:
        sign = _side_sign(str(eff["side"]))
        lung = lung_masks[str(eff["side"])]
        level = 0.53 if eff["size"] == "small" else 0.43
        if eff["uncertain"]:
            level = 0.59
        # Meniscus: the fluid climbs along the lateral chest wall.
        lateral = np.clip(x * sign - 0.25, 0.0, 1.0)  # [W]
        surface = level - 0.35 * lateral**2  # [W]
        fluid = _soft(y[:, None] - surface[None, :], 30.0) * lung
        img += 0.30 * fluid
        mask[fluid > 0.3] |= FINDING_BITS["effusion"]
    if cardio is not None:
        mask[heart > 0.3] |= FINDING_BITS["cardiomegaly"]
    if ptx is not None and ptx_region is not None:
        mask[ptx_region > 0.3] |= FINDING_BITS["pneumothorax"]
    nod = findings.get("nodule")
    if nod is not None:
        sign = _side_sign(str(nod["side"]))
        cx = sign * (0.42 + 0.08 * rng.standard_normal())
        cy = _ZONE_Y[str(nod["zone"])] + 0.03 * rng.standard_normal()
        r = float(nod["mm"]) / 400.0 + 0.015
        disc = 1.0 - (((x - cx) / r) ** 2)[None, :] - (((y - cy) / (r * 2.0)) ** 2)[:, None]
        disc = _soft(disc, 4.0)
        img += (0.10 if nod["uncertain"] else 0.22) * disc
        mask[disc > 0.3] |= FINDING_BITS["nodule"]

    # --- exposure, grain and 8-bit output ---------------------------------------------------
    gain = 1.0 + 0.08 * j[11]
    img *= gain
    img += 0.015 * rng.standard_normal((size, size), dtype=np.float32)
    np.clip(img, 0.0, 1.0, out=img)
    image = (img * 255.0 + 0.5).astype(np.uint8)
    report, labels = templated_report(rng, findings, SYNTHETIC_FINDINGS, FINDING_LABELS)
    return SyntheticSample(image=image, mask=mask, report=report, labels=labels, findings=findings)


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


def generate(n: int, size: int = 256, seed: int = 0, start: int = 0) -> Iterator[SyntheticSample]:
    """Yield ``n`` samples ``start, start + 1, …``; sample ``i`` is seeded by ``(seed, i)``."""
    for i in range(start, start + n):
        yield render_sample(np.random.default_rng([seed, i]), size)


def write_dataset(
    root: str | Path,
    n: int,
    size: int = 256,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    jpeg_quality: int = 90,
) -> Path:
    """Write ``n`` synthetic samples under ``root`` and return the manifest path.

    Layout::

        root/images/000000.jpg      grey-scale JPEG, size × size
        root/masks/000000.png       lesion mask, OR of FINDING_BITS (0 = no lesion)
        root/manifest.jsonl         one JSON object per sample (see mmclip.data.sources.manifest)

    Each sample is its own patient (``synth-000000``); the split is
    :func:`~mmclip.data.records.patient_split` of that id. Files are written to temporary
    names and renamed, and the manifest is written last, so an interrupted run never leaves a
    manifest pointing at missing files.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for i, sample in enumerate(generate(n, size, seed)):
        stem = f"{i:06d}"
        image_path = root / "images" / f"{stem}.jpg"
        mask_path = root / "masks" / f"{stem}.png"
        atomic_save_image(Image.fromarray(sample.image), image_path, quality=jpeg_quality)
        atomic_save_image(Image.fromarray(sample.mask), mask_path, compress_level=1)
        patient = f"synth-{stem}"
        record = XrayRecord(
            image_path=image_path,
            report=sample.report,
            labels=sample.labels,
            patient_id=patient,
            view="PA",
            split=patient_split(patient, val_fraction, test_fraction),
            source="synthetic",
            meta={"mask": mask_path, "findings": sample.findings},
        )
        lines.append(json.dumps(record.to_json(root), sort_keys=True))
    manifest = atomic_write_text(
        root / "manifest.jsonl", "\n".join(lines) + ("\n" if lines else "")
    )
    logger.info("wrote %d synthetic samples (%d px) to %s", n, size, root)
    return manifest
