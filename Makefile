# Two commands from a fresh clone:  `make demo`  (set up + run the main job on the built-in sample)
#                                    `make test`  (set up + run the whole suite)
VENV ?= .venv
PY := $(VENV)/bin/python
BAG ?=
CONFIG ?=
OUT ?= demo_output
STAMP := $(VENV)/.setup-stamp

.PHONY: setup demo test lint clean
setup: $(STAMP)

$(STAMP): requirements/base.txt requirements/test.txt requirements/ros-wheels.txt setup.py setup.cfg scripts/setup_venv.sh
	bash scripts/setup_venv.sh $(VENV)
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m depth_completion_ros.cli demo --out $(OUT) $(if $(BAG),--bag $(BAG)) $(if $(CONFIG),--config $(CONFIG))

test: $(STAMP)
	bash scripts/run_tests.sh $(VENV) $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build install log demo_output *.egg-info
