"""Brain MRI: joint registration + tumour segmentation (Estienne et al. 2020) and the classical SimpleITK engine."""
