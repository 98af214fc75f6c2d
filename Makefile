# Two commands set up a fresh machine: `make demo` and `make test` (see README.md).
# Every install step lives here, so CI on a clean checkout needs nothing else.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SYSTEM_PACKAGES := libzbar0 chromium chromium-driver haproxy
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast lint format system-packages venv clean

demo: system-packages venv
	$(BIN)/lenstrack demo

# Three workers (pytest-xdist), a test file each at a time: much of the suite waits on child
# servers, browsers and PostgreSQL, so three files overlap on two cores (the first part took
# 13:14 against 15:18-15:46 with two workers on this machine); whole files keep a module's
# server or browser fixture started once. Tests marked `alone` (restarting the
# PostgreSQL every other test uses) run after them, by themselves. PYTEST_WORKERS=0 runs the
# first part in one process too; PYTEST_ARGS go to both parts (a -m there replaces the split).
# pytest exits 5 when it collects no test; that is reported, not treated as a crash.
# The decoder's numba kernels are compiled first, once, into their disk cache: otherwise each
# worker would compile them itself (about 10 s each after an install or a change to them).
PYTEST_WORKERS ?= 3
test: system-packages venv
	@$(BIN)/ruff check .
	@$(BIN)/lint-imports
	@$(BIN)/python -c 'from drivers.camera.warm import warm_up; warm_up()'
	@parallel=0; alone=0; \
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not alone" --durations=25 \
	  $(PYTEST_ARGS) || parallel=$$?; \
	$(BIN)/pytest -m alone $(PYTEST_ARGS) || alone=$$?; \
	if [ $$parallel -eq 5 ] && [ $$alone -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; \
	for status in $$parallel $$alone; do [ $$status -eq 0 ] || [ $$status -eq 5 ] || exit $$status; done

test-fast: venv
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not browser and not alone" -x \
	  $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

system-packages:
	@missing=""; for package in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
