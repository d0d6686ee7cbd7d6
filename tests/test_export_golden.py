"""Golden files: the example app's export in every format, byte for byte. After an
intended change, regenerate with `HOODY_UPDATE_GOLDEN=1 pytest tests/test_export_golden.py`
and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporters import FORMATS, render, source_from_dir

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "export"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_example_app_matches_its_golden_files(fmt: str) -> None:
    files = render(fmt, source_from_dir(ROOT / "examples" / "demo")).files
    base = GOLDEN / fmt
    if os.environ.get("HOODY_UPDATE_GOLDEN"):
        for path, text in files.items():
            target = base / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    expected = {str(p.relative_to(base)): p.read_text() for p in base.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected)
    for path, text in files.items():
        assert text == expected[path], f"{fmt}/{path} differs from its golden file"
