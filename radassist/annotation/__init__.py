"""The annotation loop: review state, export of corrected labels with provenance, DICOM SEG, dataset statistics
and the pieces fine-tuning needs.

* :mod:`~radassist.annotation.review`: statuses and "next not approved" over segments and boxes;
* :mod:`~radassist.annotation.changes`: how much a correction changed (Dice, volume, surface distance, boxes,
  landmarks' TRE, image-level labels); :mod:`~radassist.annotation.provenance`: the record kept per case;
* :mod:`~radassist.annotation.export` (+ ``export_msd``, ``export_luna16``, ``export_brats``,
  ``export_exam_list``): versioned, locked, all-or-nothing export into training layouts
  (:mod:`~radassist.annotation.store` does the locking and the transaction);
* :mod:`~radassist.annotation.dicom_seg`: DICOM Segmentation referencing the source series;
* :mod:`~radassist.annotation.stats`: ``radassist dataset stats``;
* :mod:`~radassist.annotation.retrain` and :mod:`~radassist.annotation.mix`: ``--model`` weights, registering a
  fine-tuned model version, and mixing an export with the original training set;
* :mod:`~radassist.annotation.msd`: reading an MSD / nnU-Net export (and handing it to the liver training).
"""
