"""GMIC for screening mammograms: benign/malignant probabilities per view, with saliency maps and the patches
that drove the decision.

* ``model``: :class:`~radassist.mammo.model.Gmic`, its config and the forward contract the other rooms rely on
* ``resnet_blocks``: the pre-activation ResNet-22 (global) and ResNet-18 (local) built from our own blocks
* ``checkpoint_mapping``: NYU's published ``sample_model_<n>.p`` key names -> ours; registers ``gmic``
* ``losses``: BCE on the three branches plus the saliency L1 term

Importing this package imports no torch; the registry imports ``radassist.mammo.model`` when it needs ``gmic``.
"""
