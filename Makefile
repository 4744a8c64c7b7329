# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= var/obsd.toml

.PHONY: serve test install dev sdk lint typecheck bench clean

$(BIN)/obsd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

install: $(BIN)/obsd

$(VENV)/.dev: $(BIN)/obsd
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

dev: $(VENV)/.dev

$(CONFIG):
	mkdir -p $(dir $(CONFIG))
	sed -e 's|^data_dir = .*|data_dir = "var/data"|' \
	    -e 's|^write_key = "change_me.*|write_key = "demo_write_key_0001"|' obsd.toml.example > $(CONFIG)

## Start obsd on http://127.0.0.1:8080 with the embedded store and a demo project.
serve: install $(CONFIG)
	$(BIN)/obsd migrate up --config $(CONFIG)
	@echo "obsd: open http://127.0.0.1:8080/demo — query with: $(BIN)/obsd query --config $(CONFIG) 'SELECT type, count() FROM obsd.events GROUP BY type'"
	$(BIN)/obsd serve --config $(CONFIG)

sdk/node_modules: sdk/package.json sdk/package-lock.json
	cd sdk && npm ci --no-audit --no-fund
	touch $@

## Rebuild the SDK into obsd/static/ (sdk.js, sdk.mjs); tests check the shipped build matches the sources.
sdk: sdk/node_modules
	cd sdk && npm run build

lint: dev
	$(BIN)/ruff check obsd tests bench
	$(BIN)/mypy

## Install everything and run the whole suite (Python, SDK unit tests, browser end-to-end).
test: dev sdk/node_modules
	cd sdk && npm run typecheck && npm test
	$(BIN)/ruff check obsd tests bench
	$(BIN)/mypy
	OBSD_TEST_STRICT=1 $(BIN)/pytest

bench: dev
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var build *.egg-info sdk/node_modules
