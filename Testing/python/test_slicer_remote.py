"""Remote mode of the panels without Slicer: remembered settings, the options each panel sends (checked by the
server's own option parser), the views sent as PNG, and a real server's answer read back into the local result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from radassist.errors import InputError
from radassist.results.detections import Detection, Detections
from radassist.server.tasks import TASKS
from radassist.slicer import task_requests as rt
from radassist.slicer.inputs import chosen, missing_inputs
from radassist.slicer.result_files import mammo_png_pixels, png_grid, read_lung_detect, regrid_detections
from radassist.slicer.settings_store import MappingStore, RemoteSettings
from radassist.volume import Geometry, Volume

from server_fixtures import TOKEN, running_server

# -- settings -------------------------------------------------------------------------------------------------------


def test_remote_settings_round_trip_and_odd_stored_values():
    store = MappingStore()
    assert RemoteSettings.load(store) == RemoteSettings(False, "", "")  # nothing stored yet: run here
    RemoteSettings(True, " https://gpu.example.org:8000 ", " secret-token-0123456789 ").save(store)
    assert store.values["RadAssist/Server/Mode"] == "remote"
    assert RemoteSettings.load(store) == RemoteSettings(True, "https://gpu.example.org:8000",
                                                        "secret-token-0123456789")
    odd = MappingStore({"RadAssist/Server/Mode": "REMOTE ", "RadAssist/Server/URL": None,
                        "RadAssist/Server/Token": []})  # what QSettings gives for empty values
    assert RemoteSettings.load(odd) == RemoteSettings(True, "", "")
    assert RemoteSettings.load(MappingStore({"RadAssist/Server/Mode": "local"})).remote is False


def test_remote_settings_refuse_missing_token_and_bad_address():
    with pytest.raises(InputError, match="token"):
        RemoteSettings(True, "https://gpu.example.org", "").client()
    with pytest.raises(InputError, match="http"):
        RemoteSettings(True, "gpu.example.org", "secret-token-0123456789").client()
    client = RemoteSettings(True, "https://gpu.example.org/", " secret-token-0123456789 ").client()
    assert client.url == "https://gpu.example.org" and client.token == "secret-token-0123456789"


# -- inputs ---------------------------------------------------------------------------------------------------------

VIEWS = {"lccVolume": "the L-CC view", "rccVolume": "the R-CC view", "lmloVolume": "the L-MLO view",
         "rmloVolume": "the R-MLO view"}


def test_any_subset_of_views_is_enough_and_none_is_not():
    assert missing_inputs({}, {}, VIEWS) == ["at least one of " + ", ".join(VIEWS.values())]
    assert missing_inputs({"rmloVolume": "node"}, {}, VIEWS) == []
    assert chosen({"rmloVolume": "b", "lccVolume": "a", "rccVolume": None}, VIEWS) == {"lccVolume": "a",
                                                                                       "rmloVolume": "b"}
    required = {"fixedVolume": "a fixed MRI", "movingVolume": "a moving MRI"}
    assert missing_inputs({"movingVolume": "m"}, required) == ["a fixed MRI"]


# -- options each panel sends, checked by the server's parser -------------------------------------------------------

def _server_task(name: str):
    if name not in TASKS:
        pytest.skip(f"the server has no {name} task yet (another change adds it)")
    return TASKS[name]


@pytest.mark.parametrize("task, options", [
    (rt.LUNG_DETECT, rt.lung_detect_options("classic", 0.35)),
    (rt.LUNG_DETECT, rt.lung_detect_options("detr", 1)),
    (rt.LIVER_SEGMENT, rt.architecture_options("unet")),
    (rt.MAMMO_CLASSIFY, rt.mammo_options(["R-MLO", "L-CC"], 2)),
    (rt.LUNG_INFECTION, rt.architecture_options("segnet")),
    (rt.BRAIN_REGISTER, rt.brain_options("classic", ["flair", "t1"], ["flair", "t1"])),
    (rt.BRAIN_REGISTER, rt.brain_options("auto", ["sequence1"], ["sequence1"])),
])
def test_panel_options_are_what_the_server_accepts(task, options):
    parsed = _server_task(task).parse_options(options)
    for name, value in options.items():
        assert parsed[name] == value


def test_mammo_options_name_each_file_in_order():
    assert rt.mammo_options(["R-MLO", "L-CC"], 0) == {"laterality": ["R", "L"], "view": ["MLO", "CC"], "tta": 0}


def test_brain_volumes_are_named_by_role_and_sequence():
    fixed = {"flair": _volume(1), "t1": _volume(2)}
    moving = {"flair": _volume(3), "t1": _volume(4)}
    sent = rt.brain_volumes(fixed, moving)
    assert [v.source.path for v in sent] == ["fixed_flair", "fixed_t1", "moving_flair", "moving_t1"]
    assert np.array_equal(sent[3].array, moving["t1"].array)


def test_connection_text_says_whether_the_task_is_offered():
    info = {"version": "9.9", "tasks": [{"name": "lung-detect"}, {"name": "convert"}]}
    assert rt.connection_text({"version": "9.9"}, info, "lung-detect") == \
        "Connected to RadAssist 9.9; it offers lung-detect."
    text = rt.connection_text({}, info, "brain-register")
    assert "does not offer brain-register" in text and "lung-detect, convert" in text


# -- mammograms as PNG ----------------------------------------------------------------------------------------------

def _volume(seed: int, shape=(4, 6, 5)) -> Volume:
    rng = np.random.default_rng(seed)
    return Volume.from_geometry(rng.integers(0, 100, size=shape).astype(np.int16), Geometry(shape=shape))


def test_views_go_as_16_bit_pngs_the_engine_reads_back(tmp_path: Path):
    from radassist.io.mammogram import read_mammogram

    whole = Volume(array=np.array([[[0, 512], [4095, 65535]]], dtype=np.float32), spacing=(0.1, 0.1, 1.0))
    scaled = Volume(array=np.array([[[-1.5, 0.0], [2.5, 0.5]]], dtype=np.float32), spacing=(0.1, 0.1, 1.0))
    paths = rt.write_mammo_pngs({"L-CC": whole, "R-MLO": scaled}, tmp_path)
    first, second = (read_mammogram(p) for p in paths)
    assert (first.laterality, first.view, second.laterality, second.view) == ("L", "CC", "R", "MLO")
    assert np.array_equal(first.pixels, whole.array[0])  # whole numbers in range: unchanged
    assert np.array_equal(second.pixels, [[0, 24576], [65535, 32768]])  # stretched linearly onto 0..65535
    assert np.array_equal(mammo_png_pixels(scaled), second.pixels)
    with pytest.raises(InputError, match="2-slice"):
        rt.write_mammo_pngs({"L-CC": Volume(array=np.zeros((2, 3, 3), np.float32))}, tmp_path)


def test_boxes_on_the_png_grid_land_on_the_same_pixels_of_the_node_grid():
    node = Volume(array=np.zeros((1, 40, 30), np.float32), spacing=(0.07, 0.05, 1.0), origin=(10.0, -4.0, 2.0))
    sent = png_grid(node)
    box = Detection(center=(12.0, 20.0, 0.0), size=(6.0, 8.0, 1.0), probability=0.3, label="patch")  # pixel (12, 20)
    moved = regrid_detections(Detections([box], sent), sent, node.geometry).items[0]
    assert moved.center == pytest.approx((10.0 + 12 * 0.07, -4.0 + 20 * 0.05, 2.0))
    assert moved.size == pytest.approx((6 * 0.07, 8 * 0.05, 1.0))
    assert moved.probability == 0.3 and moved.label == "patch"


# -- a real server --------------------------------------------------------------------------------------------------

def test_nodules_found_on_the_server_equal_the_local_ones(tmp_path: Path):
    """The panel's job on a server (send, run, read back) gives the Detections of the same job run here and of the
    engine called directly, ready for showResult."""
    import sys

    from radassist.lung.pipeline import LungDetectionConfig, detect_nodules
    from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct

    phantom = make_chest_ct(1, ChestPhantomConfig(shape=(48, 128, 160), spacing=(1.6, 1.6, 2.5)))
    volume = dataclasses.replace(phantom.volume, source=dataclasses.replace(phantom.volume.source, path="chest ct"))
    local = detect_nodules(volume, LungDetectionConfig(score_threshold=0.3), engine="classic")
    request = rt.TaskRequest([volume], rt.lung_detect_options("classic", 0.3), read_lung_detect, rt.LUNG_DETECT)
    here = rt.run_request(request, tmp_path / "here", sys.executable, "cpu")
    with running_server(tmp_path / "server") as (url, _):
        remote = rt.run_request(request, tmp_path / "there", sys.executable, "cpu", server_url=url, token=TOKEN)
    assert remote.engine == local.engine == here.engine == "classic"
    assert [d.center for d in here.items] == [d.center for d in remote.items]
    assert remote.metadata["score_threshold"] == 0.3 and remote.metadata["model"] is None
    assert len(remote) == len(local) > 0
    for mine, theirs in zip(local.items, remote.items):
        assert theirs.center == pytest.approx(mine.center, abs=1e-3)
        assert theirs.size == pytest.approx(mine.size, abs=1e-3)
        assert theirs.probability == pytest.approx(mine.probability, abs=1e-4)
