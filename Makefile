# Two commands on a fresh machine:
#   make demo   sets up .venv and runs the main job
#   make test   sets up .venv (plus Debian test deps) and runs the test suite
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
DEMO   ?= demo-work

.PHONY: setup demo test system-deps clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

system-deps:
	bash scripts/system-deps.sh

demo: setup
	$(VENV)/bin/ddpipe demo --workdir $(DEMO)

test: setup system-deps
	$(PY) -m ruff check ddpipe tests benchmarks tools
	$(PY) -m ruff format --check ddpipe tests benchmarks tools
	$(PY) -m pytest

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
