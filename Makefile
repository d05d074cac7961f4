# mmbinpc: the two commands a newcomer needs.
#   make test   set up .venv (if missing or stale) and run the test suite
#   make demo   set up .venv (if missing or stale) and run the main job
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmbinpc-env-stamp
ENV_INPUTS := $(wildcard requirements/*.txt) setup.cfg pyproject.toml tools/setup_env.sh

.PHONY: env test demo clean-env

$(STAMP): $(ENV_INPUTS)
	tools/setup_env.sh $(VENV)
	@touch $(STAMP)

env: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests

demo: $(STAMP)
	$(PY) tools/demo.py

clean-env:
	rm -rf $(VENV)
