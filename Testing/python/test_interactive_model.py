"""LiteMedSAM in the engine: the published state dict fits our network exactly, the ONNX graphs compute what torch
computes, and the decoder learns when fine-tuned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radassist.errors import InputError
from radassist.interactive.model import LiteMedSam, LiteMedSamConfig
from radassist.interactive.tinyvit import _relative_offset_index

PUBLISHED_KEYS = 435
PUBLISHED_PARAMETERS = 9_801_439  # tensors in lite_medsam.pth, buffers included


def _weights(home):
    return home / "models" / "litemedsam" / "1.0.0" / "lite_medsam.pth"


def test_published_weights_fit_every_key_and_shape_without_renaming(litemedsam_home):
    state = torch.load(_weights(litemedsam_home), map_location="cpu", weights_only=True)
    model = LiteMedSam()
    ours = model.state_dict()
    assert len(state) == PUBLISHED_KEYS
    assert set(state) == set(ours)  # our module names are the checkpoint's: no key map needed
    assert all(tuple(state[k].shape) == tuple(ours[k].shape) for k in state)
    assert sum(t.numel() for t in state.values()) == PUBLISHED_PARAMETERS
    model.load_state_dict(state, strict=True)
    for key in ("image_encoder.layers.2.blocks.5.attn.attention_biases", "mask_decoder.iou_token.weight",
                "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"):
        assert torch.equal(model.state_dict()[key], state[key])


def test_attention_bias_tables_have_the_published_sizes():
    # one bias per distinct (|dy|, |dx|) in a window: 7 x 7 windows -> 49, 14 x 14 -> 196 (checkpoint shapes)
    assert _relative_offset_index(7)[0] == 49
    count, index = _relative_offset_index(14)
    assert count == 196 and index.shape == (196, 196) and int(index.max()) == 195
    assert int(index[0, 0]) == 0 and int(index[0, 1]) == 1 and int(index[1, 0]) == 1  # symmetric offsets


def test_weights_of_another_network_are_refused_with_the_keys_named(litemedsam_home, tmp_path):
    from radassist.interactive.weights import load_litemedsam

    state = torch.load(_weights(litemedsam_home), map_location="cpu", weights_only=True)
    state.pop("mask_decoder.iou_token.weight")
    state["image_encoder.neck.0.weight"] = torch.zeros(128, 320, 1, 1)
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(InputError) as error:
        load_litemedsam(broken)
    assert "mask_decoder.iou_token.weight" in str(error.value) and "image_encoder.neck.0.weight" in str(error.value)


def test_a_pickle_with_code_is_never_loaded(tmp_path):
    from radassist.interactive.weights import load_litemedsam

    evil = tmp_path / "evil.pth"
    torch.save({"model": LiteMedSamConfig()}, evil)  # a Python object, not tensors
    with pytest.raises(InputError, match="weights_only|Python objects"):
        load_litemedsam(evil)


def test_onnx_graphs_match_torch_on_a_real_slice(litemedsam, test_data):
    from radassist.interactive.preprocess import IntensityWindow, prepare_slices, window_to_uint8
    from radassist.io import read_volume

    model, _, engine = litemedsam
    flair = read_volume(test_data / "brain" / "brats2015" / "brats_2013_pat0002_1" / "Flair_subtrMeanDivStd.nii.gz")
    image = prepare_slices(window_to_uint8(flair.array[95:96], IntensityWindow.percentiles()))
    box = np.array([[90.0, 60.0, 170.0, 150.0]], dtype=np.float32)
    with torch.inference_mode():
        embedding = model.encode(torch.from_numpy(image))
        logits, iou = model.decode(embedding, torch.from_numpy(box))
    onnx_embedding = engine.encode(image)
    onnx_logits, onnx_iou = engine.decode(embedding[0].numpy(), box[0])
    assert onnx_embedding.shape == (1, 256, 64, 64)
    assert np.abs(onnx_embedding - embedding.numpy()).max() < 2e-3
    assert np.abs(onnx_logits - logits[0, 0].numpy()).max() < 2e-3
    assert abs(onnx_iou - float(iou)) < 1e-3
    assert ((onnx_logits > 0) == (logits[0, 0].numpy() > 0)).mean() > 0.999


def _tiny_config() -> LiteMedSamConfig:
    return LiteMedSamConfig(image_size=64, encoder_dims=(8, 16, 20, 40), encoder_heads=(1, 2, 2, 4),
                            encoder_windows=(7, 7, 8, 4), embed_dim=32, mask_in_channels=8, decoder_mlp_dim=64,
                            decoder_heads=2, iou_head_hidden=32)


def test_the_decoder_learns_boxes_on_cpu():
    from radassist.interactive.train import FinetuneConfig, finetune_decoder

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    size, count = 64, 8
    images = np.zeros((count, 3, size, size), dtype=np.float32)
    masks = np.zeros((count, size, size), dtype=np.float32)
    boxes = np.zeros((count, 4), dtype=np.float32)
    rows, cols = np.mgrid[:size, :size]
    for i in range(count):  # a bright disc on noise; the box is the disc's box
        cy, cx, radius = rng.integers(20, 44), rng.integers(20, 44), rng.integers(6, 14)
        disc = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius ** 2
        images[i] = 0.3 * rng.random((size, size)) + 0.6 * disc
        masks[i] = disc
        boxes[i] = [cx - radius, cy - radius, cx + radius, cy + radius]
    model = LiteMedSam(_tiny_config())

    def dice_now() -> float:
        with torch.no_grad():
            logits, _ = model(torch.from_numpy(images), torch.from_numpy(boxes))
        predicted = logits[:, 0].numpy() > 0
        return float(2 * (predicted & (masks > 0)).sum() / (predicted.sum() + masks.sum()))

    before = dice_now()
    history = finetune_decoder(model, images, boxes, masks, FinetuneConfig(steps=150, learning_rate=3e-3,
                                                                           batch_size=8))
    assert np.mean(history.losses[-10:]) < 0.5 * np.mean(history.losses[:5])
    assert before < 0.3 and dice_now() > 0.8
    assert not any(p.requires_grad for p in model.image_encoder.parameters())
