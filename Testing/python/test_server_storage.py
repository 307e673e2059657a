"""Server-side safety without a server: names from clients, zip archives, task options."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from radassist.errors import InputError
from radassist.server.options import OptionSpec, parse_options
from radassist.server.settings import ServerSettings, ZipLimits
from radassist.server.storage import JobStorage, display_name, extract_zip, input_suffix
from radassist.server.tasks import TASKS, VOLUME_SUFFIXES


@pytest.mark.parametrize("name, shown", [
    ("scan.nii.gz", "scan.nii.gz"), ("../../etc/passwd", "passwd"), ("C:\\Users\\x\\ct.nrrd", "ct.nrrd"),
    ("a\x00b\n.nrrd", "a_b_.nrrd"), ("", "upload"), (None, "upload"), ("..", "upload")])
def test_display_names_are_plain_last_parts(name, shown):
    assert display_name(name) == shown


def test_only_listed_extensions_are_accepted():
    assert input_suffix("CT.NII.GZ", VOLUME_SUFFIXES) == ".nii.gz"
    assert input_suffix("../x/series.zip", VOLUME_SUFFIXES) == ".zip"
    for bad in ("ct.nhdr", "ct", "ct.mhd", None, "ct.nii.gz/"):
        with pytest.raises(InputError):
            input_suffix(bad, VOLUME_SUFFIXES)


def test_job_storage_is_private_and_removed(tmp_path: Path):
    storage = JobStorage(tmp_path)
    folder = storage.create("a" * 32)
    assert folder.parent == storage.root and (folder / "inputs").is_dir()
    with pytest.raises(ValueError):
        storage.folder("../" + "a" * 30)
    storage.close()
    assert not storage.root.exists() and tmp_path.exists()


def _archive(tmp_path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    path = tmp_path / "in.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return path


def test_a_plain_series_unpacks_to_numbered_files(tmp_path: Path):
    path = _archive(tmp_path, [("sub/dir/one.dcm", b"1" * 10), ("two", b"2" * 20), ("empty/", b"")])
    assert extract_zip(path, tmp_path / "out", "s.zip", ZipLimits()) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.dcm", "00001.dcm"]
    assert (tmp_path / "out" / "00001.dcm").read_bytes() == b"2" * 20


def test_links_encryption_counts_and_totals_are_refused(tmp_path: Path):
    link = zipfile.ZipInfo("link.dcm")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(InputError, match="symbolic link"):
        extract_zip(_archive(tmp_path, [(link, b"/etc/passwd")]), tmp_path / "o1", "s.zip", ZipLimits())
    many = [(f"{i}.dcm", b"x") for i in range(5)]
    with pytest.raises(InputError, match="at most 4"):
        extract_zip(_archive(tmp_path, many), tmp_path / "o2", "s.zip", ZipLimits(max_members=4))
    with pytest.raises(InputError, match="more than the 100 accepted"):
        extract_zip(_archive(tmp_path, [("a", b"x" * 60), ("b", b"y" * 60)]), tmp_path / "o3", "s.zip",
                    ZipLimits(max_total_bytes=100))
    with pytest.raises(InputError, match="not a readable zip"):
        (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not a zip")
        extract_zip(tmp_path / "junk.zip", tmp_path / "o4", "s.zip", ZipLimits())


def test_a_bomb_that_understates_its_size_is_stopped_while_unpacking(tmp_path: Path):
    """Headers saying 1000 bytes for a member that inflates to 1 MB: the byte count stops it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.dcm", b"\0" * 1_000_000)
    data = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size in both headers
        at = data.index(signature)
        data[at + offset:at + offset + 4] = struct.pack("<I", 1000)
    path = tmp_path / "bomb.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="zip bomb|not a readable zip"):
        extract_zip(path, tmp_path / "out", "bomb.zip", ZipLimits(max_ratio=1e9))
    assert sum(p.stat().st_size for p in (tmp_path / "out").glob("*")) <= 1000 + 2**20


def test_options_are_checked_against_their_specs():
    specs = TASKS["lung-detect"].options
    assert parse_options(specs, None)["engine"] == "auto"
    assert parse_options(specs, {"threshold": 1})["threshold"] == 1.0
    for bad in ({"threshold": "0.5"}, {"threshold": True}, {"max_nodules": 0}, {"engine": "magic"},
                {"unknown": 1}, [1], {"threshold": float("nan")}):
        with pytest.raises(InputError):
            parse_options(specs, bad)
    per_file = OptionSpec("view", str, None, "", per_file=True, pattern=r"[A-Z]+")
    assert parse_options((per_file,), {"view": ["CC", None]}) == {"view": ["CC", None]}
    with pytest.raises(InputError):
        parse_options((per_file,), {"view": "CC"})


def test_settings_refuse_weak_tokens_and_empty_limits():
    with pytest.raises(ValueError):
        ServerSettings(token="short")
    with pytest.raises(ValueError):
        ServerSettings(token="x" * 20, queue_size=0)
