"""Result types and their Slicer-native writers: .seg.nrrd, NIfTI labels, .mrk.json, ITK transforms, CSV/JSON, PNG.

Names are imported from their sub-module on first use, so importing one light result type (a Slicer panel reading
a Segment) does not import every writer's dependencies (pynrrd, slicerio, SimpleITK, Pillow).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "csv_json": ("plain_json", "read_detections_csv", "write_classification", "write_detections_csv",
                 "write_report"),
    "detections": ("Detection", "Detections"),
    "displacement": ("DisplacementField",),
    "label_nifti": ("read_labelmap_nifti", "write_labelmap_nifti"),
    "labelmap": ("LabelMap",),
    "markups": ("read_point_markups", "read_roi_markups", "write_point_markups", "write_roi_markups"),
    "preview": ("CT_LIVER", "CT_LUNG", "CT_SOFT_TISSUE", "Panel", "Preview", "Window", "preview_classification",
                "preview_detections", "preview_labelmap", "preview_registration"),
    "seg_nrrd": ("read_seg_nrrd", "write_seg_nrrd"),
    "segments": ("Code", "ReviewStatus", "Segment", "Terminology"),
    "tables": ("Classification", "ClassifiedImage", "Report"),
    "terminology": ("CATALOGUE", "CatalogueEntry", "terminology_for"),
    "transforms": ("read_displacement", "warp_volume", "write_displacement_nifti", "write_itk_displacement_h5"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'radassist.results' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"radassist.results.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
