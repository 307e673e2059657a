"""The segment-box task that Slicer's LiteMedSAM effect and buttons run: a job process (the real job runner) on
the files a panel writes, giving the very segmentation `radassist segment box` gives, here or on a server; its
options named and defaulted like the CLI's; bad boxes refused before the model loads, with the ROI file named."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from radassist.errors import InputError
from radassist.interactive.boxes import BoxPrompt, box_around_mask
from radassist.server.tasks import TASKS
from radassist.slicer.task_requests import SEGMENT_BOX, run_request, segment_box_request
from radassist.volume import Volume


@pytest.fixture
def home(litemedsam_home, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(litemedsam_home))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    return litemedsam_home


def mammogram():
    """A small synthetic mammogram (a one-slice volume) with one benign mass, and the mass's mask."""
    from radassist.synthetic.mammo import MammoPhantomConfig, make_mammogram

    view = make_mammogram(0, "L", "CC", findings=["benign_mass"],
                          config=MammoPhantomConfig(shape=(736, 480), pixel_spacing_mm=0.4))
    return view.to_volume(), view.benign_mask[None]


def test_the_job_gives_what_the_command_and_the_server_give(litemedsam, home, tmp_path):
    from server_fixtures import TOKEN, running_server

    from radassist.cli import main
    from radassist.results import Detection, Detections, read_seg_nrrd, write_roi_markups

    image, lesion = mammogram()
    box = box_around_mask(lesion, image.geometry, margin_px=6, name="Mass")
    request = segment_box_request(image, [box])
    assert request.task == SEGMENT_BOX
    result = run_request(request, tmp_path / "job", sys.executable, "cpu")
    assert [segment.name for segment in result.labelmap.segments] == ["Mass 1"]
    mask = result.labelmap.mask(result.labelmap.segments[0])
    assert 2 * (mask & lesion).sum() / (mask.sum() + lesion.sum()) > 0.75
    row = result.report.rows[0]
    assert row["voxels"] == int(mask.sum()) and row["volume_ml"] > 0

    write_roi_markups(Detections([Detection(box.center_lps, box.size_mm, 1.0, "Mass")]), tmp_path / "box.mrk.json")
    from radassist.io import write_volume

    write_volume(image, tmp_path / "image.nrrd")
    assert main(["segment", "box", str(tmp_path / "image.nrrd"), "--roi", str(tmp_path / "box.mrk.json"),
                 "--out", str(tmp_path / "cli")]) == 0
    assert np.array_equal(read_seg_nrrd(tmp_path / "cli" / "segmentation.seg.nrrd").mask("Mass 1"), mask)
    with running_server(tmp_path / "server") as (url, _):  # a panel set to "Server": the same files come back
        remote = run_request(request, tmp_path / "remote", sys.executable, "cpu", server_url=url, token=TOKEN)
    assert np.array_equal(remote.labelmap.mask(remote.labelmap.segments[0]), mask)


def test_a_box_off_the_image_is_refused_naming_the_roi_file(home, tmp_path):
    """Refused before the model loads, and nothing is left in the result folder (the task as the job runs it)."""
    from radassist.runtime.device import choose_device
    from radassist.runtime.progress import Progress
    from radassist.server.tasks_base import TaskInput, run_task

    image, _ = mammogram()
    far = BoxPrompt((5000.0, 5000.0, -1.0), (5010.0, 5010.0, 1.0), "Lost")
    written = segment_box_request(image, [far]).write_inputs(tmp_path / "inputs")
    task = TASKS[SEGMENT_BOX]
    with pytest.raises(InputError, match="boxes.mrk.json: box 'Lost 1' lies outside the image"):
        run_task(task, [TaskInput(path, name) for path, name in written], task.parse_options({}),
                 choose_device("cpu"), Progress(), tmp_path / "output")
    assert not (tmp_path / "output").exists()
    with pytest.raises(InputError, match="no box to segment"):
        segment_box_request(image, [])


def test_two_images_and_no_roi_file_are_refused(tmp_path):
    from radassist.server.tasks_segment import split_inputs
    from radassist.server.tasks_base import TaskInput

    with pytest.raises(InputError, match="one image and one ROI file"):
        split_inputs([TaskInput(tmp_path / "a.nrrd", "a.nrrd"), TaskInput(tmp_path / "b.nrrd", "b.nrrd")])
    image, roi = split_inputs([TaskInput(tmp_path / "b.mrk.json", "b.mrk.json"), TaskInput(tmp_path / "a", "a.png")])
    assert (image.shown, roi.shown) == ("a.png", "b.mrk.json")


def test_options_are_named_and_defaulted_like_the_command():
    from radassist.cli import build_parser

    task = TASKS[SEGMENT_BOX]
    assert task.command == "segment box" and task.models == ("litemedsam",)
    defaults = task.parse_options({})
    parsed = build_parser().parse_args(["segment", "box", "image.nrrd", "--out", "out", "--box", "0,0,0,1,1,1"])
    for name, value in defaults.items():
        assert getattr(parsed, name) == value, name
    with pytest.raises(InputError, match="option 'backend'"):
        task.parse_options({"backend": "tensorrt"})


def test_a_volume_in_the_request_keeps_its_geometry(tmp_path):
    """What the job reads is the panel's image on its own grid (one slice of a CT at its place)."""
    from radassist.io import read_volume

    array = np.arange(2 * 6 * 5, dtype=np.int16).reshape(2, 6, 5)
    volume = Volume(array, (0.5, 0.7, 3.0), (10.0, -4.0, 22.0), (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))
    request = segment_box_request(volume, [BoxPrompt((8.0, -6.0, 22.0), (10.0, -4.0, 25.0), "A")])
    written = request.write_inputs(tmp_path)
    assert [name for _, name in written] == ["volume0.nrrd", "boxes.mrk.json"]
    back = read_volume(written[0][0])
    assert np.array_equal(back.array, array) and np.allclose(back.geometry.ijk_to_ras, volume.geometry.ijk_to_ras)
