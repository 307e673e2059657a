"""radassist.io.json_files: every way a user's JSON file can be unusable becomes one InputError naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radassist.errors import InputError
from radassist.io import read_json, read_json_object


def test_a_valid_object_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"liver": 1, "tumour": [2, 3]}), encoding="utf-8")
    assert read_json_object(path) == {"liver": 1, "tumour": [2, 3]}
    assert read_json(str(path), "label table") == {"liver": 1, "tumour": [2, 3]}


def test_a_list_is_returned_when_a_list_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "exams.json"
    path.write_text('[{"id": "a"}]', encoding="utf-8")
    assert read_json(path, "exam list", expected=list) == [{"id": "a"}]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(InputError) as caught:
        read_json_object(path, "label table")
    assert caught.value.path == str(path)
    assert caught.value.problem == "label table not found"
    assert str(caught.value) == f"{path}: label table not found"


def test_invalid_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"labels": {\n  "liver": 1,\n  "tumour": 2,\n}}\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_json_object(path, "label table")
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: label table is not valid JSON: ")
    assert "at line 4 column 1" in caught.value.problem


def test_an_empty_file_is_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="JSON file is not valid JSON: Expecting value at line 1 column 1"):
        read_json(path)


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "a list"), ('"text"', "a string"), ("3", "a number"),
                                            ("null", "null"), ("true", "true or false")])
def test_a_top_level_that_is_not_an_object_is_refused(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "record.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_json_object(path, "provenance record")
    assert caught.value.path == str(path)
    assert caught.value.problem == f"provenance record is not a JSON object: its top level is {kind}"
    assert read_json(path) == json.loads(text)  # without ``expected`` any JSON value is returned


def test_an_object_where_a_list_is_expected_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "exams.json"
    path.write_text('{"exams": []}', encoding="utf-8")
    with pytest.raises(InputError, match="exam list is not a JSON list: its top level is an object"):
        read_json(path, "exam list", expected=list)


def test_a_folder_instead_of_a_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "dataset.json"
    folder.mkdir()
    with pytest.raises(InputError) as caught:
        read_json_object(folder, "dataset description")
    assert caught.value.path == str(folder)
    assert caught.value.problem == "dataset description is a folder, not a file"


def test_text_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"name": "tumeur hépatique"}'.encode("latin-1"))
    with pytest.raises(InputError) as caught:
        read_json_object(path, "label table")
    assert caught.value.path == str(path)
    assert caught.value.problem.startswith("label table is not UTF-8 text")


def _refuse_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def read_text(self: Path, *args, **kwargs) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", read_text)


def test_an_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.json"
    path.write_text("{}", encoding="utf-8")
    _refuse_reading(monkeypatch)  # chmod 0 does not stop root, so the refusal is simulated
    with pytest.raises(InputError) as caught:
        read_json(path, "markups file")
    assert caught.value.path == str(path)
    assert caught.value.problem == "markups file is not readable (permission denied)"


def test_a_folder_refused_as_on_windows_is_still_called_a_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse_reading(monkeypatch)  # Windows raises PermissionError, not IsADirectoryError, for a folder
    with pytest.raises(InputError, match="result file is a folder, not a file"):
        read_json_object(tmp_path, "result file")
