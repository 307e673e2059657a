# The two quickstart commands: `make demo` and `make test`. Each creates (or reuses) the virtual environment
# .venv from pyproject.toml and constraints.txt, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= demo-output

.PHONY: demo test venv test-tools clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel -c constraints.txt
	$(BIN)/python -m pip install -c constraints.txt -e ".[test]"
	touch $@

demo: venv
	$(BIN)/radassist demo --out $(OUT) --overwrite

# Optional outside tools some tests use when present: Debian's dicom3tools (dciodvfy validates DICOM SEG files).
# Installed when apt-get can (root on Debian/Ubuntu); otherwise those tests skip and say why.
test-tools:
	@command -v dciodvfy >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -qq dicom3tools >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dicom3tools >/dev/null 2>&1)) || \
	  echo "note: dciodvfy not installed; DICOM SEG validation tests will be skipped"; }

# Two workers: on a 2-core machine one runs while the other waits for a job process or a download. A test file
# stays on one worker (--dist loadfile), so a module's fixtures are built once.
TEST_WORKERS ?= 2

test: venv test-tools
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
