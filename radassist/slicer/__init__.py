"""The bridge between the RadAssist engine and 3D Slicer: the only engine package that talks to Slicer.

Importing this package imports nothing from Slicer, so the pure parts (``conversions``, the dependency checks)
run and are tested in plain Python. ``nodes`` and ``worker`` import slicer/qt/vtk and load only inside Slicer.
"""
