"""Liver and liver-tumour segmentation on abdominal CT with U-Net and mU-Net (Seo et al., IEEE TMI 2020), plus the
measurements a report needs.

* ``preprocess``: CT windows, 2.5-D slice stacks, the "is this a CT" check
* ``augment``, ``losses``, ``datasets`` (LiTS layout), ``train``: the seed recipe for training
* ``model``: ``liver-unet`` and ``liver-munet`` registered architectures and the label table
* ``inference``, ``postprocess``, ``pipeline``: :func:`radassist.liver.pipeline.segment_liver`, the entry point
* ``quantify`` (with ``grid``): liver volume, tumours, tumour burden of any segmentation
* ``evaluate``: the LiTS metrics; ``weights``: finding trained weights or saying how to get them
"""
