# Set-up is automatic: every target creates .venv and installs the project into it when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zeuspy-installed

.PHONY: demo test stress bench lint clean

# The dev and bench requirements are dependency groups (PEP 735), which pip installs from 25.1.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check 'pip>=25.1'
	$(PY) -m pip install --quiet --disable-pip-version-check -e . --group dev
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# The suite in two passes (tests/harness/parallel.py says which tests are serial, and why): the
# tests that can share the machine on $(TEST_WORKERS) pytest-xdist workers, a whole file per worker
# (module fixtures are built once), then the serial ones alone. Both passes run; either failing
# fails the target.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -m "not serial" -n $(TEST_WORKERS) --dist loadfile; parallel=$$?; \
	$(PY) -m pytest -q -m serial; serial=$$?; \
	test $$parallel -eq 0 && test $$serial -eq 0

# The stress suite at full size (stress/; `make test` runs it reduced): fuzz, faults, soak,
# reload under load; its figures are printed as a table at the end.
stress: $(STAMP)
	ZEUSPY_STRESS=full $(PY) -m pytest stress -q

BENCH_STAMP := $(VENV)/.zeuspy-bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e . --group dev --group bench
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/run.py
	$(PY) bench/reload.py
	$(PY) bench/heavy.py
	$(PY) bench/suites.py
	$(PY) bench/rewrite.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests stress bench examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build src/*.egg-info
