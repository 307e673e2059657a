"""A plain (non-editable) wheel install must carry the model catalogue, or every model command breaks."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_catalogue_where_the_runtime_looks(tmp_path: Path) -> None:
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(PROJECT_ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next(tmp_path.glob("radassist-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [n for n in names if n.endswith("/data/share/radassist/models.json")]
    assert data, "models.json is not in the wheel"
    assert any(n.endswith("/data/share/radassist/models.schema.json") for n in names)
    assert "radassist/runtime/paths.py" in names and "radassist/cli.py" in names

    # Install the wheel into a fresh environment (reusing this one's dependencies) and load the catalogue there,
    # from a folder outside the checkout so the source tree's Resources/ cannot be found instead.
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = next(env.glob("lib/python*/site-packages"))
    here = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "numpy").is_dir())
    (site / "dependencies.pth").write_text(str(here) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
                              "--no-deps", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    probe = subprocess.run(
        [str(env / "bin" / "python"), "-c",
         "import radassist, radassist.runtime.catalog as c; print(radassist.__file__); print(len(c.load_catalog().ids()))"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert probe.returncode == 0, probe.stderr
    module_file, count = probe.stdout.split()
    assert str(site) in module_file, "the wheel's radassist was not the one imported"
    assert int(count) >= 10
