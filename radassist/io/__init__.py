"""Readers and writers: volumes (NIfTI, NRRD, MetaImage, DICOM series), mammograms (DICOM, PNG) and the JSON files
users hand in (dataset descriptions, label tables, markups, catalogues)."""

from radassist.io.dicom import MultipleSeriesError, SeriesInfo, list_series, read_dicom_series
from radassist.io.images import read_volume, write_volume
from radassist.io.json_files import read_json, read_json_object
from radassist.io.mammogram import Mammogram, read_mammogram

__all__ = [
    "Mammogram",
    "MultipleSeriesError",
    "SeriesInfo",
    "list_series",
    "read_dicom_series",
    "read_json",
    "read_json_object",
    "read_mammogram",
    "read_volume",
    "write_volume",
]
