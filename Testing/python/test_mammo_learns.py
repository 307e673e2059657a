"""GMIC learns on CPU from image-level labels alone: a small GMIC is trained briefly on tiny synthetic mammograms
where the "malignant" images carry a lesion; the loss falls, the training images are separated, and the
malignant saliency map peaks on the lesion although no lesion location was ever given.

The breasts are RadAssist's synthetic phantoms (radassist.synthetic.mammo) at 256 x 160 pixels, 1 mm each,
without findings; the lesion is a simplified bright mass drawn by the test, because the phantom's realistic
spiculated masses are too subtle at this size for a network trained for a few seconds. Every breast appears
twice, once with and once without its lesion, so the only thing that separates the classes is the lesion.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from radassist.mammo.losses import GmicLossConfig, gmic_loss
from radassist.mammo.model import Gmic, GmicConfig
from radassist.synthetic.mammo import MammoPhantomConfig, make_mammogram

SHAPE = (256, 160)
BREASTS = 12
STEPS = 60


def tiny_config() -> GmicConfig:
    """The published structure scaled down: 3 pre-activation stages (saliency 16 x 10), 48-pixel patches,
    two patches per image, a 3-stage local ResNet with 8 filters."""
    return GmicConfig(global_filters=8, global_blocks=(1, 1, 1), global_strides=(1, 2, 2), post_processing_dim=32,
                      cam_size=(16, 10), top_t_percent=5.0, num_patches=2, crop_shape=(48, 48), local_filters=8,
                      local_blocks=(1, 1, 1), attention_dim=16)


def standardise(pixels: np.ndarray) -> np.ndarray:
    x = pixels.astype(np.float32)
    return (x - x.mean()) / max(float(x.std()), 1e-5)


def add_mass(pixels: np.ndarray, breast: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """A round bright mass with a soft rim, well inside the breast; returns the image and the mass's box
    (row0, row1, col0, col1), inclusive."""
    inner = np.argwhere(ndimage.binary_erosion(breast, iterations=22))
    row, col = inner[rng.integers(len(inner))]
    radius = rng.uniform(11.0, 14.0)
    rr, cc = np.mgrid[:pixels.shape[0], :pixels.shape[1]]
    distance = np.hypot(rr - row, cc - col)
    profile = np.clip((radius - distance) / 3.0, 0.0, 1.0)
    out = np.clip(pixels.astype(np.float32) + 1300.0 * profile, 0, 4095)
    rows, cols = np.nonzero(profile > 0)
    return out, (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max()))


@pytest.fixture(scope="module")
def dataset() -> tuple[torch.Tensor, torch.Tensor, list]:
    config = MammoPhantomConfig(shape=SHAPE, pixel_spacing_mm=1.0)
    rng = np.random.default_rng(0)
    images, labels, boxes = [], [], []
    for seed in range(BREASTS):
        phantom = make_mammogram(seed, "L", "CC", findings=[], config=config)
        with_mass, box = add_mass(phantom.pixels, phantom.breast_mask, rng)
        images += [standardise(phantom.pixels), standardise(with_mass)]
        labels += [[0.0, 0.0], [0.0, 1.0]]  # (benign, malignant): normal, lesion
        boxes += [None, box]
    return torch.from_numpy(np.stack(images)[:, None]), torch.tensor(labels), boxes


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def test_gmic_learns_lesions_and_its_saliency_finds_them(dataset) -> None:
    images, labels, boxes = dataset
    torch.manual_seed(0)
    model = Gmic(tiny_config())
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_config = GmicLossConfig(beta=1e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    model.train()
    for _ in range(STEPS):
        batch = torch.randperm(len(images), generator=generator)[:8]
        terms = gmic_loss(model(images[batch]), labels[batch], loss_config)
        optimiser.zero_grad()
        terms.total.backward()
        optimiser.step()
        losses.append(float(terms.total.detach()))
    assert np.mean(losses[-8:]) < 0.5 * np.mean(losses[:8]), losses

    model.eval()
    with torch.no_grad():
        out = model(images)
    malignant = labels[:, 1].numpy()
    assert auc(malignant, out.y_fusion[:, 1].numpy()) >= 0.95
    assert auc(malignant, out.y_global[:, 1].numpy()) >= 0.9
    assert ((out.y_fusion[:, 1].numpy() > 0.5) == (malignant == 1)).mean() >= 0.9

    # The malignant map's peak is on the lesion: its cell is the lesion's or a neighbour of one of the lesion's
    # cells (cells are 16 x 16 pixels, a lesion spans about 2 x 2 of the 16 x 10 cells; by chance a peak would
    # be this close for roughly 1 lesion image in 10).
    saliency = out.saliency_maps[:, 1].numpy()
    h, w = saliency.shape[1:]
    cell = (SHAPE[0] / h, SHAPE[1] / w)
    hits = []
    for index, box in enumerate(boxes):
        if box is None:
            continue
        row, col = np.unravel_index(np.argmax(saliency[index]), (h, w))
        rows = (int(box[0] // cell[0]), int(box[1] // cell[0]))
        cols = (int(box[2] // cell[1]), int(box[3] // cell[1]))
        hits.append(rows[0] - 1 <= row <= rows[1] + 1 and cols[0] - 1 <= col <= cols[1] + 1)
    assert np.mean(hits) >= 0.75, hits
