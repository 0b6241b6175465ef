"""Every ```python block of README.md and docs/*.md runs (CPU, offline, in seconds).

Conventions (README.md, "Development"):

- the blocks of one page run in order in one namespace, as in a notebook, so a later block
  may use the imports and names of an earlier one;
- a block preceded by the line ``<!-- no-test: reason -->`` is not run (torchrun, long
  training, a real dataset); the reason is shown as the skip reason;
- blocks run in a temporary working directory that holds ``xray.png`` (8-bit grey),
  ``xray16.png`` (16-bit) and ``xray.dcm`` (DICOM) of one synthetic X-ray,
  ``runs/demo/model`` (an untrained mmclip-tiny saved as training saves it) and
  ``data/synthetic`` (60 synthetic X-rays, as ``mmclip data prepare synthetic`` writes
  them); ``MMCLIP_HOME`` points to a temporary model directory where that model is
  registered as ``mmclip-tiny:demo``, so the snippets that load the demo's model run
  without the demo;
- ``../shared/data`` is not there: blocks that read it must check that it exists.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NO_TEST = re.compile(r"^<!--\s*no-test\s*:?\s*(.*?)\s*-->$")


@dataclass
class Snippet:
    """One ```python block: its page, first line number, code and skip reason (or None)."""

    page: Path
    line: int
    code: str
    skip: str | None


def snippets(page: Path) -> list[Snippet]:
    """The ```python blocks of a Markdown page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            previous = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
            match = NO_TEST.match(previous)
            skip = (match.group(1) or "marked no-test") if match else None
            found.append(Snippet(page, start + 1, "\n".join(lines[start:end]), skip))
            i = end
        i += 1
    return found


def _write_images(root: Path) -> None:
    from PIL import Image

    from tests.models.test_image_inputs import write_dicom

    yy, xx = np.meshgrid(np.linspace(-1, 1, 128), np.linspace(-1, 1, 112), indexing="ij")
    lungs = np.exp(-(((xx - 0.4) / 0.3) ** 2 + (yy / 0.6) ** 2))
    lungs += np.exp(-(((xx + 0.4) / 0.3) ** 2 + (yy / 0.6) ** 2))
    grey = np.round(255 * (1 - lungs / lungs.max())).astype(np.uint8)
    Image.fromarray(grey).save(root / "xray.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(root / "xray16.png")
    write_dicom(root / "xray.dcm", grey.astype(np.uint16) * 257)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The working directory of the snippets, with the images and a registered demo model."""
    import torch

    from mmclip.data import synthetic
    from mmclip.models import create_model
    from mmclip.models.home import register_pretrained

    root = tmp_path_factory.mktemp("doc-snippets")
    _write_images(root)
    home = root / "mmclip-home"
    previous = os.environ.get("MMCLIP_HOME")
    os.environ["MMCLIP_HOME"] = str(home)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        create_model("mmclip-tiny").save_pretrained(root / "runs" / "demo" / "model")
    register_pretrained(root / "runs" / "demo" / "model", "mmclip-tiny", "demo")
    synthetic.write_dataset(root / "data" / "synthetic", n=60, size=64, seed=0)
    yield root
    if previous is None:
        os.environ.pop("MMCLIP_HOME", None)
    else:
        os.environ["MMCLIP_HOME"] = previous


def test_the_pages_have_snippets_and_no_doctest_prompts() -> None:
    blocks = [s for page in PAGES for s in snippets(page)]
    assert len(blocks) > 20
    for s in blocks:
        assert ">>> " not in s.code, f"{s.page.name}:{s.line}: a ```python block holds >>>"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_python_blocks_of_a_page_run(page: Path, workspace: Path, monkeypatch) -> None:
    runnable = [s for s in snippets(page) if s.skip is None]
    if not runnable:
        pytest.skip(f"{page.name}: no runnable ```python block")
    monkeypatch.chdir(workspace)
    namespace: dict[str, object] = {"__name__": f"doc_{page.stem}"}
    t0 = time.perf_counter()
    for s in runnable:
        name = f"{s.page.relative_to(REPO)}:{s.line}"
        exec(compile(s.code, name, "exec"), namespace)
    assert time.perf_counter() - t0 < 30, f"{page.name}: snippets too slow for the docs test"
