"""Shared fixtures: where the real test images are (RADASSIST_TEST_DATA, default ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_data_root() -> Path:
    return Path(os.environ.get("RADASSIST_TEST_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The real sample data folder; skipped when absent, except in CI where its absence is a failure."""
    root = test_data_root()
    if not root.is_dir():
        message = f"real test data not found at {root} (set RADASSIST_TEST_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def markups_schema(test_data: Path) -> dict:
    import json

    return json.loads((test_data / "slicer" / "markups-schema-v1.0.3.json").read_text())


@pytest.fixture
def unwritable_folder(tmp_path: Path):
    """An existing folder this process cannot write into (root ignores permissions, so use sysfs there)."""
    if os.geteuid() == 0:
        folder = Path("/sys/kernel")
        if not folder.is_dir():
            pytest.skip("no folder is read-only for root here")
        yield folder
        return
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


@pytest.fixture(scope="module")
def model_home(tmp_path_factory):
    """A private model cache for a test module: what it trains or installs goes here, not into the user's cache,
    and no site catalogue from the environment is read."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("radassist-cache")
        patch.setenv("RADASSIST_CACHE_DIR", str(home))
        patch.delenv("RADASSIST_CATALOGS", raising=False)
        yield home
