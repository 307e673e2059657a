"""Evaluation metrics: LUNA16 FROC/CPM, detection precision/recall/F1/AP by nodule size, and their plots."""

from radassist.metrics.detection import (SIZE_BANDS, DetectionEvaluation, DetectionScores, average_precision,
                                         box_iou, box_iou_matrix, evaluate_detections, match_detections, size_band)
from radassist.metrics.froc import (FP_RATES, FrocBootstrap, FrocMarks, FrocResult, bootstrap_froc, evaluate_froc,
                                    froc_from_marks, match_candidates, sensitivity_at)
from radassist.metrics.plots import FrocPlot, draw_froc, write_froc_png

__all__ = [
    "FP_RATES", "SIZE_BANDS", "DetectionEvaluation", "DetectionScores", "FrocBootstrap", "FrocMarks", "FrocPlot",
    "FrocResult", "average_precision", "bootstrap_froc", "box_iou", "box_iou_matrix", "draw_froc",
    "evaluate_detections", "evaluate_froc", "froc_from_marks", "match_candidates", "match_detections",
    "sensitivity_at", "size_band", "write_froc_png",
]
