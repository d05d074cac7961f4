# mmbinpc: the two commands a newcomer needs.
#   make test   set up .venv (if missing or stale) and run the test suite
#   make demo   set up .venv (if missing or stale) and run the main job
#   make lint   flake8, isort and yapf (settings in setup.cfg) on the code
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmbinpc-env-stamp
ENV_INPUTS := $(wildcard requirements/*.txt) setup.cfg pyproject.toml tools/setup_env.sh

.PHONY: env test demo lint clean-env

$(STAMP): $(ENV_INPUTS)
	tools/setup_env.sh $(VENV)
	@touch $(STAMP)

env: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests

demo: $(STAMP)
	$(PY) tools/demo.py

LINTED := mmbinpc tools tests configs
lint: $(STAMP)
	$(PY) -m flake8 $(LINTED)
	$(PY) -m isort --check-only --diff $(LINTED)
	$(PY) -m yapf --diff --recursive $(LINTED)

clean-env:
	rm -rf $(VENV)
