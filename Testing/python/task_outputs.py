"""The files each single-scan command writes into its output folder: what a batch case folder and a server job's
result must hold."""

BRAIN_FILES = ["jacobian.nii.gz", "registration.png", "report.csv", "report.json",
               "result.json", "transform.h5", "tumour_fixed.seg.nrrd", "warped.nii.gz"]
INFECTION_FILES = ["infection.seg.nrrd", "infection_preview.png", "infection_report.csv", "infection_report.json",
                   "result.json"]
