"""DICOM → cached 8-bit PNG, for the sources that ship DICOM (RSNA Pneumonia, SIIM-ACR).

The decoders of the pipeline read JPEG / PNG, so each DICOM is converted once (modality
rescale, VOI window, MONOCHROME1 inversion, min-max to 8 bit) and cached next to the others;
later runs reuse the PNG. Writes go to a temporary name and are renamed into place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmclip.data.records import DataError, XrayRecord, patient_split
from mmclip.io import atomic_output

__all__ = [
    "DicomSplit",
    "dicom_image_record",
    "dicom_patient_id",
    "dicom_to_png",
    "dicom_to_uint8",
    "dicom_to_unit",
]


def dicom_to_unit(source: Path | Any) -> np.ndarray:
    """Pixels of a DICOM file (or a read ``pydicom.Dataset``) as float32 [H, W] in [0, 1].

    Modality rescale, the VOI window when the file has one, min-max to [0, 1] and
    MONOCHROME1 inverted (dense = bright), as the sources' PNG cache stores them.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    is_dataset = isinstance(source, pydicom.Dataset)
    where = (getattr(source, "filename", None) or "DICOM dataset") if is_dataset else source
    try:
        ds = source if is_dataset else pydicom.dcmread(source)
        pixels = ds.pixel_array
    except Exception as err:  # pydicom raises many types for bad files
        raise DataError(f"{where}: cannot read DICOM pixels ({err})") from err
    if pixels.ndim != 2:
        raise DataError(f"{where}: expected a 2-D grey-scale image, got shape {pixels.shape}")
    data = apply_modality_lut(pixels, ds)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        data = apply_voi_lut(data, ds)
    data = np.asarray(data, dtype=np.float32)
    lo, hi = float(data.min()), float(data.max())
    scaled = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")) == "MONOCHROME1":
        scaled = 1.0 - scaled
    return scaled.astype(np.float32, copy=False)


def dicom_to_uint8(path: Path) -> np.ndarray:
    """Pixels of a DICOM file as a uint8 [H, W] display image (dense = bright)."""
    return (dicom_to_unit(path) * 255.0 + 0.5).astype(np.uint8)


def dicom_patient_id(path: Path) -> str | None:
    """The PatientID tag of a DICOM file (header only, pixels not read)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception as err:
        raise DataError(f"{path}: cannot read DICOM header ({err})") from err
    value = str(ds.get("PatientID", "")).strip()
    return value or None


def dicom_to_png(path: Path, cache_dir: Path, name: str | None = None) -> Path:
    """Convert ``path`` to ``cache_dir/<name or stem>.png`` once; return the PNG path."""
    if not path.is_file():
        raise DataError(f"{path}: DICOM file not found")
    out = cache_dir / f"{name or path.stem}.png"
    if out.is_file() and out.stat().st_mtime >= path.stat().st_mtime:
        return out
    image = dicom_to_uint8(path)
    with atomic_output(out) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", compress_level=1)
    return out


@dataclass(frozen=True)
class DicomSplit:
    """Where a DICOM source caches its PNGs and how it splits patients.

    Attributes:
        cache_dir: the PNG cache folder.
        val_fraction, test_fraction: patient-hash split fractions.
        salt: the split hash's salt (one per source, so sources split independently).
    """

    cache_dir: Path
    val_fraction: float
    test_fraction: float
    salt: str

    @classmethod
    def under(
        cls,
        root: Path,
        cache_dir: str | Path | None,
        val_fraction: float,
        test_fraction: float,
        salt: str,
    ) -> DicomSplit:
        """The split of a source at ``root``; the cache defaults to ``root/png_cache``."""
        cache = Path(cache_dir) if cache_dir is not None else root / "png_cache"
        return cls(cache, val_fraction, test_fraction, salt)


def dicom_image_record(
    dcm: Path,
    split: DicomSplit,
    labels: dict[str, int],
    patient_id: str,
    source: str,
    meta: dict[str, object],
    name: str | None = None,
) -> XrayRecord:
    """An image-only record of one DICOM: converted once to a cached PNG, split by patient."""
    return XrayRecord(
        image_path=dicom_to_png(dcm, split.cache_dir, name),
        report=None,
        labels=labels,
        patient_id=patient_id,
        view=None,
        split=patient_split(patient_id, split.val_fraction, split.test_fraction, salt=split.salt),
        source=source,
        meta={**meta, "dicom": dcm},
    )
