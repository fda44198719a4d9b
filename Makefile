# The two commands of the README:
#   make demo   - create .venv if missing, install, run the whole pipeline demo
#   make test   - create .venv if missing, install, run the test suite
# Both are idempotent: the install step runs again only when setup.cfg/pyproject.toml change.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cohesiv-installed
ARCH   := $(shell uname -m)
# torch/torchvision pins: these wheels lie on this kind of machine's disk (an unpinned torch
# downloads a multi-GB CUDA build). Override with `make TORCH_PINS=... test`.
ifeq ($(ARCH),aarch64)
TORCH_PINS ?= torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
endif

.PHONY: demo test install lint fixup bench clean real-model

demo: $(STAMP)
	$(VENV)/bin/cohesiv demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

install: $(STAMP)

# The real-image model: pseudo-labels of the real clips in ../shared/data (or $$COHESIV_DATA) plus
# synthetic clips -> runs/real/ (trained, calibrated, scored on the real image sets). Resumable.
real-model: $(STAMP)
	$(PY) bench/real.py $(REAL_ARGS)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,hands]' $(TORCH_PINS)
	$(PY) -m cohesiv.hands.model_setup --quiet || echo "warning: hand model not built; 'cohesiv hands' will explain"
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

fixup: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info
