# Ringwell: the commands a newcomer, a developer and CI all run.
BIN := .venv/bin
DATA ?= data

.PHONY: run test check peers bench bench-register clean

.venv/.run: pyproject.toml scripts/venv.sh
	@scripts/venv.sh
	@touch $@

.venv/.test: pyproject.toml scripts/venv.sh
	@scripts/venv.sh test
	@touch $@ .venv/.run

## run: set up (venv, data dir, demo org and users) and start the server on SQLite
run: .venv/.run
	@$(BIN)/ringwell setup-demo --data-dir $(DATA)
	@exec $(BIN)/ringwell serve --data-dir $(DATA)

## peers: install the Debian packages of the real SIP peers the tests use
peers:
	@scripts/install-peers.sh

## test: install what the tests need and run the whole suite
test: .venv/.test peers
	$(BIN)/pytest -p no:cacheprovider

## check: lint and type-check
check: .venv/.test
	$(BIN)/ruff check ringwell tests bench
	$(BIN)/mypy

## bench: every benchmark (results go to bench/RESULTS.md)
bench: bench-register

bench-register: .venv/.test peers
	$(BIN)/python -m bench.register

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
