# wirehub: `make run` serves on http://127.0.0.1:8765, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8765
ARGS   ?=

.PHONY: run test lint autobahn clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/wirehub serve --host $(HOST) --port $(PORT) $(ARGS)

test: $(STAMP)
	bash scripts/test.sh $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples

autobahn: $(STAMP)
	bash scripts/autobahn.sh

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache node_modules tests/interop/node_modules

# wirehub vs Node ws and Python peers (docs/performance.md): make bench ARGS=--quick
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(VENV)/bin/wirehub bench --out bench/results $(ARGS)
