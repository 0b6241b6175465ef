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
from mmclip.data.sources.manifest import load_manifest
from mmclip.data.sources.mimic_cxr import load_mimic_cxr
from mmclip.data.sources.nih import NIH_FINDINGS, load_nih_chestxray14
from mmclip.data.sources.rsna import load_rsna_pneumonia
from mmclip.data.sources.siim import load_siim_pneumothorax

__all__ = [
    "NIH_FINDINGS",
    "SOURCES",
    "dicom_to_png",
    "list_sources",
    "load_chexpert",
    "load_covid_collection",
    "load_covidx",
    "load_image_folder",
    "load_iu_xray",
    "load_kermany",
    "load_manifest",
    "load_mimic_cxr",
    "load_nih_chestxray14",
    "load_rsna_pneumonia",
    "load_siim_pneumothorax",
    "load_source",
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
    "image-folder": load_image_folder,
    "manifest": load_manifest,
}
"""Adapter of each dataset layout, by name."""


def list_sources() -> list[str]:
    """Names accepted by :func:`load_source`."""
    return sorted(SOURCES)


def load_source(name: str, root: str | Path, **kwargs: Any) -> list[XrayRecord]:
    """Records of dataset ``name`` under ``root`` (``manifest``: ``root`` is the file)."""
    try:
        adapter = SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; known: {list_sources()}") from None
    params = inspect.signature(adapter).parameters
    if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        valid = [k for k in params if k != "root"]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ValueError(f"source {name!r} has no option(s) {unknown}; its options: {valid}")
    return adapter(root, **kwargs)
