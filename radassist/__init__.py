"""RadAssist engine: readers, pipelines, results and writers, with no dependency on 3D Slicer."""

__version__ = "0.1.0"
