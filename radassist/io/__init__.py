"""Readers and writers: volumes (NIfTI, NRRD, MetaImage, DICOM series) and mammograms (DICOM, PNG)."""

from radassist.io.dicom import MultipleSeriesError, SeriesInfo, list_series, read_dicom_series
from radassist.io.images import read_volume, write_volume
from radassist.io.mammogram import Mammogram, read_mammogram

__all__ = [
    "Mammogram",
    "MultipleSeriesError",
    "SeriesInfo",
    "list_series",
    "read_dicom_series",
    "read_mammogram",
    "read_volume",
    "write_volume",
]
