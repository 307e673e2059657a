"""RadAssist's runtime Python requirements, held in the package so Slicer can check them without pyproject.toml.

Slicer installs the ``radassist`` folder as plain files (no pip metadata), so the first-use installer in
:mod:`radassist.slicer.dependencies` needs this list at run time. It must equal ``[project] dependencies`` in
pyproject.toml; a test keeps the two in step.
"""

from __future__ import annotations

RUNTIME_REQUIREMENTS: tuple[str, ...] = (
    "torch>=2.1",
    "monai>=1.3",
    "SimpleITK>=2.3",
    "h5py>=3.8",
    "numpy>=1.24",
    "scipy>=1.10",
    "scikit-image>=0.21",
    "pydicom>=2.4",
    "highdicom>=0.22",
    "slicerio>=1.0",
    "pynrrd>=1.0",
    "onnx>=1.15",
    "onnxruntime>=1.17",
    "requests>=2.31",
    "tqdm>=4.66",
    "Pillow>=10.0",
    "safetensors>=0.4",
    "jsonschema>=4.20",
    "packaging>=23.0",
    "filelock>=3.12",
    "matplotlib>=3.7",
)

# Distribution name -> the module it installs, where they differ; used when a package (Slicer's own SimpleITK,
# for one) is importable but carries no pip metadata.
IMPORT_NAMES: dict[str, str] = {
    "scikit-image": "skimage",
    "pynrrd": "nrrd",
    "pillow": "PIL",
    "simpleitk": "SimpleITK",
}

# Installed through Slicer's PyTorch extension (it picks the CUDA build that matches the driver), never plain pip.
TORCH_DISTRIBUTION = "torch"
