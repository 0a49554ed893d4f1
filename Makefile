# Two commands for a new user (README):  make demo   and   make test
# Everything is installed into ./.venv; torch is always the pinned pair from constraints.txt.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast clean

setup: $(STAMP)

$(STAMP): setup.py constraints.txt tools/build_test_msgs.sh tools/vision_msgs_pkg/CMakeLists.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	bash tools/build_test_msgs.sh $(VENV)
	touch $@

demo: setup
	$(BIN)/weather-restore demo

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build install log .build *.egg-info
