"""Deterministic phantoms with ground truth for every task, and writers in the real data sets' layouts.

* :func:`radassist.synthetic.chest.make_chest_ct`: chest CT, lungs and nodules (LUNA16-like)
* :func:`radassist.synthetic.abdomen.make_abdomen_ct`: abdominal CT, liver and tumours (LiTS-like)
* :func:`radassist.synthetic.brain.make_brain_pair`: brain MRI pair, tumour labels and the true deformation
* :func:`radassist.synthetic.mammo.make_mammogram` / ``make_mammogram_exam``: screening mammograms with lesions
* :func:`radassist.synthetic.datasets.write_dataset`: any of them written as a data set on disk

The same seed and config always give the same arrays; shared building blocks live in ``noise``.
"""
