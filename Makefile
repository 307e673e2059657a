# The two quickstart commands: `make demo` and `make test`. Each creates (or reuses) the virtual environment
# .venv from pyproject.toml and constraints.txt, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= demo-output

.PHONY: demo test venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel -c constraints.txt
	$(BIN)/python -m pip install -c constraints.txt -e ".[test]"
	touch $@

demo: venv
	$(BIN)/radassist demo --out $(OUT)

test: venv
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
