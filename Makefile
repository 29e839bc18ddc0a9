# destination-iterable — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: venv demo test unit integration lint bench bench-sandbox soak clean

venv: $(STAMP)

$(STAMP): setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; install Python 3.11 (apt-get install python3.11 python3.11-venv)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[tests]"
	rm -f $(VENV)/.installed-* && touch $@

demo: venv
	$(PY) -m integration_tests.demo

test: venv lint
	$(PY) -m pytest -q unit_tests integration_tests

unit: venv
	$(PY) -m pytest -q unit_tests

integration: venv
	$(PY) -m pytest -q integration_tests

lint: venv
	$(PY) -m ruff check .

bench: venv
	$(PY) -m pip install --quiet -e ".[tests,bench]"
	$(PY) -m bench.throughput --records 1000000 --streams 4 --limit 20

bench-sandbox: venv
	$(PY) -m bench.sandbox_speed

soak: venv
	$(PY) -m bench.soak --records 200000 --minutes 3

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
