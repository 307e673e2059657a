"""Result types and their Slicer-native writers: .seg.nrrd, NIfTI labels, .mrk.json, ITK transforms, CSV/JSON, PNG."""

from radassist.results.csv_json import (plain_json, read_detections_csv, write_classification,
                                        write_detections_csv, write_report)
from radassist.results.detections import Detection, Detections
from radassist.results.displacement import DisplacementField
from radassist.results.label_nifti import read_labelmap_nifti, write_labelmap_nifti
from radassist.results.labelmap import LabelMap
from radassist.results.markups import (read_point_markups, read_roi_markups, write_point_markups,
                                       write_roi_markups)
from radassist.results.preview import (CT_LIVER, CT_LUNG, CT_SOFT_TISSUE, Panel, Preview, Window,
                                       preview_classification, preview_detections, preview_labelmap,
                                       preview_registration)
from radassist.results.seg_nrrd import read_seg_nrrd, write_seg_nrrd
from radassist.results.segments import Code, ReviewStatus, Segment, Terminology
from radassist.results.tables import Classification, ClassifiedImage, Report
from radassist.results.terminology import CATALOGUE, CatalogueEntry, terminology_for
from radassist.results.transforms import (read_displacement, warp_volume, write_displacement_nifti,
                                          write_itk_displacement_h5)

__all__ = [
    "CATALOGUE", "CT_LIVER", "CT_LUNG", "CT_SOFT_TISSUE", "CatalogueEntry", "Classification", "ClassifiedImage",
    "Code", "Detection", "Detections", "DisplacementField", "LabelMap", "Panel", "Preview", "Report",
    "ReviewStatus", "Segment", "Terminology", "Window", "plain_json", "preview_classification",
    "preview_detections", "preview_labelmap", "preview_registration", "read_detections_csv",
    "read_displacement", "read_labelmap_nifti", "read_point_markups", "read_roi_markups", "read_seg_nrrd",
    "terminology_for", "warp_volume", "write_classification", "write_detections_csv",
    "write_displacement_nifti", "write_itk_displacement_h5", "write_labelmap_nifti", "write_point_markups",
    "write_report", "write_roi_markups", "write_seg_nrrd",
]
