"""Where RadAssist keeps models and downloads: a per-user cache folder with a platform default, overridable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "RADASSIST_CACHE_DIR"
CATALOG_ENV = "RADASSIST_CATALOGS"


def cache_dir() -> Path:
    """``$RADASSIST_CACHE_DIR``, else the platform's user cache folder + ``radassist``."""
    if override := os.environ.get(CACHE_ENV):
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "radassist" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "radassist"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radassist"


def models_dir() -> Path:
    """Installed model weights live here, one folder per model id and version."""
    return cache_dir() / "models"


def user_catalog() -> Path:
    """The catalogue of models the user imported or trained; it lives beside the installed models."""
    return models_dir() / "user-models.json"


def bundled_catalog() -> Path:
    """The model catalogue shipped with RadAssist.

    Looked for where each way of installing puts it: inside the package (the Slicer extension build copies it to
    radassist/resources/), the source checkout's Resources/ (editable installs, running from a clone), and
    <prefix>/share/radassist/ (a wheel's data files).
    """
    package_root = Path(__file__).resolve().parents[1]
    candidates = (package_root / "resources" / "models.json",
                  package_root.parent / "Resources" / "models.json",
                  Path(sys.prefix) / "share" / "radassist" / "models.json")
    return next((path for path in candidates if path.is_file()), candidates[1])


def extra_catalogs() -> list[Path]:
    """Site or user catalogue files from ``$RADASSIST_CATALOGS`` (os.pathsep-separated)."""
    value = os.environ.get(CATALOG_ENV, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]
