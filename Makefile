# Course commands. Each target first runs `setup`, which is idempotent: it creates .venv when
# missing and installs the pinned packages, the asset packages and nlpprune_lessons; it does nothing
# when requirements*.txt, pyproject.toml and scripts/install.sh have not changed since the last run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nlpprune-installed
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=900 --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: setup lab lab-solutions test lint unit notebooks expected pages course doctor student clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-assets.txt pyproject.toml scripts/install.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --upgrade "pip>=24"
	bash scripts/install.sh $(BIN)/python
	$(BIN)/nlpprune doctor
	touch $@

# Jupyter refuses to run as root unless told; containers and some classroom machines run as root.
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root)

# `make lab` opens the learner's copies in student/ (written when missing, never over a learner's edits);
# the solved notebooks in notebooks/ are the repository's and the tests': `make lab-solutions` opens them.
lab: setup
	$(BIN)/nlpprune student student
	$(BIN)/jupyter lab $(LAB_FLAGS) student/00_welcome_and_setup.ipynb

lab-solutions: setup
	$(BIN)/jupyter lab $(LAB_FLAGS) notebooks/00_welcome_and_setup.ipynb

# nbval runs on copies of the notebooks that carry the expected outputs of their
# '# NBVAL_CHECK_OUTPUT' cells (tests/expected_outputs/); the committed notebooks have no outputs.
NBVAL_COPIES := build/nbval

# The whole suite: the layers contract, the unit tests, every notebook in FAST mode; the 25 slowest
# tests are printed (not asserted: the machine may be shared).
test: setup lint
	rm -rf $(NBVAL_COPIES) && $(BIN)/nlpprune expected prepare --out $(NBVAL_COPIES)
	NLPPRUNE_FAST=1 $(BIN)/python -m pytest tests $(NBVAL_COPIES) $(NBVAL) --durations=25

# The package's layers (library < lessons < course), as pyproject.toml's import-linter contract states them.
lint: setup
	$(BIN)/lint-imports

# Quick feedback while editing: no notebooks, no tests that read the asset packages or take seconds.
unit: setup lint
	NLPPRUNE_FAST=1 $(BIN)/python -m pytest tests -m "not slow and not assets" --durations=10

notebooks: setup
	rm -rf $(NBVAL_COPIES) && $(BIN)/nlpprune expected prepare --out $(NBVAL_COPIES)
	NLPPRUNE_FAST=1 $(BIN)/python -m pytest $(NBVAL_COPIES) $(NBVAL)

expected: setup
	$(BIN)/nlpprune expected record

# The results pages (docs/results/) and the README's lesson times, generated from results/reference/*.json.
pages: setup
	$(BIN)/nlpprune report --pages docs/results

course: setup
	$(BIN)/nlpprune run

doctor: setup
	$(BIN)/nlpprune doctor

student: setup
	$(BIN)/nlpprune student student

clean:
	rm -rf build .pytest_cache  # never student/: it holds the learner's work
