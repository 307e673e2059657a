"""Lung infection segmentation on CT: U-Net and SegNet over axial slices (Saood and Hatem, BMC Med Imaging 2021).

Four classes by default (background/normal lung, ground-glass opacity, consolidation, pleural effusion), trained
with median-frequency-balanced cross-entropy; results are a label map with one segment per class and a report of
per-class volumes and the infected share of each lung. Entry point: :func:`radassist.lung.infection.pipeline.
segment_infection`.
"""
