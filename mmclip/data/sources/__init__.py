"""Dataset adapters: one function per public dataset layout, each returning
``list[XrayRecord]``. :func:`load_source` picks one by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmclip.data.records import XrayRecord
from mmclip.data.sources.chexpert import load_chexpert
from mmclip.data.sources.covid_collection import load_covid_collection
from mmclip.data.sources.covidx import load_covidx
from mmclip.data.sources.dicom import dicom_to_png
from mmclip.data.sources.folder import load_image_folder, load_kermany
from mmclip.data.sources.iu_xray import load_iu_xray
from mmclip.data.sources.jsrt import load_jsrt
from mmclip.data.sources.manifest import load_manifest
from mmclip.data.sources.mimic_cxr import load_mimic_cxr
from mmclip.data.sources.nih import NIH_FINDINGS, load_nih_chestxray14
from mmclip.data.sources.rsna import load_rsna_pneumonia
from mmclip.data.sources.siim import load_siim_pneumothorax

__all__ = [
    "NIH_FINDINGS",
    "SOURCES",
    "SOURCE_ALIASES",
    "dicom_to_png",
    "list_sources",
    "load_chexpert",
    "load_covid_collection",
    "load_covidx",
    "load_image_folder",
    "load_iu_xray",
    "load_jsrt",
    "load_kermany",
    "load_manifest",
    "load_mimic_cxr",
    "load_nih_chestxray14",
    "load_rsna_pneumonia",
    "load_siim_pneumothorax",
    "load_source",
    "load_synthetic",
    "resolve_source",
]

SOURCES: dict[str, Callable[..., list[XrayRecord]]] = {
    "mimic-cxr": load_mimic_cxr,
    "chexpert": load_chexpert,
    "nih-chestxray14": load_nih_chestxray14,
    "rsna-pneumonia": load_rsna_pneumonia,
    "siim-acr": load_siim_pneumothorax,
    "covidx": load_covidx,
    "iu-xray": load_iu_xray,
    "covid-collection": load_covid_collection,
    "kermany": load_kermany,
    "jsrt": load_jsrt,
    "image-folder": load_image_folder,
    "manifest": load_manifest,
}
"""Adapter of each dataset layout, by name."""


def load_synthetic(root: str | Path) -> list[XrayRecord]:
    """A folder written by ``mmclip data prepare synthetic`` (its ``manifest.jsonl``)."""
    manifest = Path(root) / "manifest.jsonl"
    if Path(root).is_file():
        raise NotADirectoryError(
            f"{str(root)!r} is a file, not a synthetic dataset folder (a folder holding "
            "manifest.jsonl); a single image goes to --images (`mmclip zeroshot --images`, "
            "`mmclip encode --images`)"
        )
    if not manifest.is_file():
        raise FileNotFoundError(
            f"no synthetic dataset at {str(root)!r} (no manifest.jsonl); create one with "
            f"`mmclip data prepare synthetic --out {root}`"
        )
    return load_manifest(manifest, source="synthetic")


SOURCES["synthetic"] = load_synthetic

SOURCE_ALIASES: dict[str, str] = {
    "covid-notes": "covid-collection",
    "iu-reports": "iu-xray",
    "jsrt-nodules": "jsrt",
}
"""Other names of sources: the folder names of ``shared/data``."""


def resolve_source(name: str) -> str:
    """The registered name of ``name`` (an alias → its source).

    Raises:
        ValueError: an unknown name; the message lists the sources and aliases.
    """
    name = SOURCE_ALIASES.get(name, name)
    if name not in SOURCES:
        aliases = ", ".join(f"{k}={v}" for k, v in SOURCE_ALIASES.items())
        raise ValueError(
            f"unknown source {name!r}; known: {', '.join(list_sources())} (aliases: {aliases})"
        )
    return name


def list_sources() -> list[str]:
    """Names accepted by :func:`load_source` (``synthetic`` first, then the adapters)."""
    return ["synthetic", *sorted(k for k in SOURCES if k != "synthetic")]


def load_source(name: str, root: str | Path, **kwargs: Any) -> list[XrayRecord]:
    """Records of dataset ``name`` under ``root`` (``manifest``: ``root`` is the file)."""
    name = resolve_source(name)
    adapter = SOURCES[name]
    params = inspect.signature(adapter).parameters
    if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        valid = [k for k in params if k != "root"]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ValueError(f"source {name!r} has no option(s) {unknown}; its options: {valid}")
    return adapter(root, **kwargs)
