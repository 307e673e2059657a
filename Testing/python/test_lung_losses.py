"""Lung-DETR loss parts against values worked out by hand: box conversions, generalised IoU and sigmoid focal loss
(MONAI's, called as the loss calls them), Hungarian matching, and the set criterion (including slabs without
nodules and the auxiliary decoder losses)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data.box_utils import (
    box_area,
    box_giou,
    box_iou,
    box_pair_giou,
    convert_box_mode,
)
from monai.losses.focal_loss import sigmoid_focal_loss

from radassist.lung.losses import DetrLoss, box_cxcywh_to_xyxy, focal_alpha
from radassist.lung.matcher import (
    HungarianMatcher,
    focal_class_cost,
    match_cost_matrix,
    optimal_assignment,
)
from radassist.lung.model import LungDetrConfig

LN2 = math.log(2)


def test_box_conversions_round_trip():
    cxcywh = torch.tensor([[0.5, 0.4, 0.2, 0.6], [0.1, 0.9, 0.0, 0.1]])
    xyxy = box_cxcywh_to_xyxy(cxcywh)
    torch.testing.assert_close(xyxy, torch.tensor([[0.4, 0.1, 0.6, 0.7], [0.1, 0.85, 0.1, 0.95]]))
    torch.testing.assert_close(convert_box_mode(xyxy, src_mode="xyxy", dst_mode="ccwh"), cxcywh)
    torch.testing.assert_close(box_area(xyxy), torch.tensor([0.12, 0.0]))


def test_generalized_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 4.0, 4.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [1.0, 1.0, 2.0, 2.0]])
    # overlap 1 of union 7 in a 3x3 hull; disjoint in a 3x1 hull; contained 1 in 16
    expected = torch.tensor([1 / 7 - 2 / 9, 0 - 1 / 3, 1 / 16])
    torch.testing.assert_close(box_pair_giou(a, b), expected)
    pairwise = box_giou(a, b)
    assert pairwise.shape == (3, 3)
    torch.testing.assert_close(pairwise.diagonal(), expected)
    torch.testing.assert_close(box_giou(a, a).diagonal(), torch.ones(3))
    assert box_iou(a[:1], b[:1]).item() == pytest.approx(1 / 7)


def test_sigmoid_focal_loss_by_hand():
    logits = torch.tensor([0.0, 0.0, math.log(3), math.log(3)])  # p = 0.5, 0.5, 0.75, 0.75
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    expected = torch.tensor([
        0.25 * 0.5 ** 2 * LN2,                  # positive, alpha 0.25, (1 - p_t)^2 = 0.25
        0.75 * 0.5 ** 2 * LN2,                  # negative, 1 - alpha
        0.25 * 0.25 ** 2 * -math.log(0.75),     # confident and right: damped 16-fold
        0.75 * 0.75 ** 2 * -math.log(0.25),     # confident and wrong: barely damped
    ])
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, gamma=2.0, alpha=focal_alpha(0.25)), expected)
    # gamma 0 and no alpha weighting (a negative alpha in our config): plain binary cross-entropy
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, gamma=0.0, alpha=focal_alpha(-1)), bce)


def test_match_cost_by_hand():
    logits = torch.tensor([[0.0]])
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    target = {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.6, 0.5, 0.2, 0.2]])}
    class_cost = 0.25 * 0.25 * LN2 - 0.75 * 0.25 * LN2  # focal(positive) - focal(negative) at p = 0.5
    assert focal_class_cost(logits, target["labels"]).item() == pytest.approx(class_cost, abs=1e-6)
    giou = 0.1 * 0.2 / (0.08 - 0.02) - 0  # boxes overlap 0.1 x 0.2 of a 0.3 x 0.2 union = hull
    cost = match_cost_matrix(logits, boxes, target)
    assert cost.item() == pytest.approx(2 * class_cost + 5 * 0.1 + 2 * -giou, abs=1e-5)


def test_hungarian_matching_beats_greedy():
    """Greedy would give query 0 its nearest target (0.02) and leave query 1 a far one (0.15): 0.17 in total.
    The optimal assignment crosses over: 0.08 + 0.05 = 0.13. Query 2 is far from both and stays unmatched."""
    targets = [{"labels": torch.tensor([0, 0]),
                "boxes": torch.tensor([[0.50, 0.5, 0.1, 0.1], [0.60, 0.5, 0.1, 0.1]])}]
    boxes = torch.tensor([[[0.52, 0.5, 0.1, 0.1], [0.45, 0.5, 0.1, 0.1], [0.95, 0.5, 0.1, 0.1]]])
    outputs = {"pred_logits": torch.zeros(1, 3, 1), "pred_boxes": boxes}
    matcher = HungarianMatcher(cost_class=0.0, cost_bbox=1.0, cost_giou=0.0)
    [(queries, columns)] = matcher(outputs, targets)
    assert dict(zip(queries.tolist(), columns.tolist())) == {0: 1, 1: 0}
    rows, cols = optimal_assignment(torch.tensor([[1.0, 2.0], [2.0, 100.0], [50.0, 50.0]]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    with pytest.raises(ValueError, match="NaN"):
        optimal_assignment(torch.tensor([[float("nan")]]))


def test_matcher_handles_images_without_targets():
    outputs = {"pred_logits": torch.zeros(2, 4, 1), "pred_boxes": torch.full((2, 4, 4), 0.5)}
    targets = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)},
               {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.5, 0.5]])}]
    matches = HungarianMatcher()(outputs, targets)
    assert [len(q) for q, _ in matches] == [0, 1]


def crafted_outputs() -> dict:
    """Query 0 sits exactly on the target with logit 0; query 1 elsewhere with p = 0.75."""
    return {"pred_logits": torch.tensor([[[0.0], [math.log(3)]]], requires_grad=True),
            "pred_boxes": torch.tensor([[[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.1, 0.1]]], requires_grad=True)}


def test_set_loss_by_hand():
    config = LungDetrConfig.tiny(aux_loss=False)
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2]])}]
    losses = DetrLoss(config)(crafted_outputs(), targets)
    focal = 0.25 * 0.25 * LN2 + 0.75 * 0.75 ** 2 * -math.log(0.25)  # matched positive + unmatched negative
    assert losses["loss_ce"].item() == pytest.approx(focal, rel=1e-5)
    assert losses["loss_bbox"].item() == pytest.approx(0.0, abs=1e-6)
    # MONAI adds float32's eps (1.2e-7) to the union: a perfect 0.2 x 0.2 box scores IoU 1 - 3e-6
    assert losses["loss_giou"].item() == pytest.approx(1.19e-7 / 0.04, rel=0.01)
    assert losses["loss"].item() == pytest.approx(2 * focal, rel=1e-5)
    assert set(losses) == {"loss_ce", "loss_bbox", "loss_giou", "loss"}


def test_box_losses_are_normalised_by_the_number_of_boxes_and_give_gradients():
    config = LungDetrConfig.tiny(aux_loss=False)
    outputs = {"pred_logits": torch.zeros(2, 3, 1, requires_grad=True),
               "pred_boxes": torch.full((2, 3, 4), 0.25).requires_grad_()}
    box = torch.tensor([[0.35, 0.25, 0.25, 0.25]])  # 0.1 to the right of every prediction: L1 0.1
    targets = [{"labels": torch.tensor([0]), "boxes": box}, {"labels": torch.tensor([0]), "boxes": box}]
    losses = DetrLoss(config)(outputs, targets)
    assert losses["loss_bbox"].item() == pytest.approx(0.1, abs=1e-6)  # (0.1 + 0.1) / 2 boxes
    overlap = 0.15 * 0.25
    giou = overlap / (2 * 0.0625 - overlap) - (0.35 * 0.25 - (2 * 0.0625 - overlap)) / (0.35 * 0.25)
    assert losses["loss_giou"].item() == pytest.approx(1 - giou, abs=1e-5)
    losses["loss"].backward()
    assert outputs["pred_boxes"].grad.abs().sum() > 0 and outputs["pred_logits"].grad.abs().sum() > 0


def test_slabs_without_nodules_only_teach_background():
    config = LungDetrConfig.tiny()
    logits = torch.randn(3, 5, 1, requires_grad=True)
    outputs = {"pred_logits": logits, "pred_boxes": torch.rand(3, 5, 4).requires_grad_(),
               "aux_outputs": [{"pred_logits": logits * 2, "pred_boxes": torch.rand(3, 5, 4)}]}
    empty = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)} for _ in range(3)]
    losses = DetrLoss(config)(outputs, empty)
    background = sigmoid_focal_loss(logits, torch.zeros_like(logits), 2.0, 0.25).sum()  # divided by max(0, 1)
    assert losses["loss_ce"].item() == pytest.approx(background.item(), rel=1e-5)
    assert losses["loss_bbox"].item() == 0 and losses["loss_giou"].item() == 0
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert torch.all(logits.grad > 0)  # every query is pushed towards "no nodule"


def test_auxiliary_losses_for_every_earlier_decoder_layer():
    config = LungDetrConfig.tiny()
    outputs = crafted_outputs()
    outputs["aux_outputs"] = [crafted_outputs(), crafted_outputs()]
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2]])}]
    losses = DetrLoss(config)(outputs, targets)
    assert {"loss_ce_0", "loss_bbox_1", "loss_giou_1"} <= set(losses)
    assert losses["loss_ce_1"].item() == pytest.approx(losses["loss_ce"].item())
    weighted = sum(weight * losses[f"{name}{suffix}"] for suffix in ("", "_0", "_1")
                   for name, weight in (("loss_ce", 2), ("loss_bbox", 5), ("loss_giou", 2)))
    assert losses["loss"].item() == pytest.approx(weighted.item())
    without = DetrLoss(LungDetrConfig.tiny(aux_loss=False))(outputs, targets)
    assert "loss_ce_0" not in without and without["loss"].item() == pytest.approx(losses["loss"].item() / 3)


def test_bad_targets_are_refused():
    criterion = DetrLoss(LungDetrConfig.tiny())
    outputs = crafted_outputs()
    with pytest.raises(ValueError, match="labels must be in"):
        criterion(outputs, [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2]])}])
    with pytest.raises(ValueError, match="boxes must be"):
        criterion(outputs, [{"labels": torch.tensor([0]), "boxes": torch.tensor([0.3, 0.3, 0.2, 0.2])}])
    with pytest.raises(ValueError, match="2 targets for a batch of 1"):
        criterion(outputs, [{"labels": torch.tensor([0]), "boxes": torch.zeros(1, 4)}] * 2)
