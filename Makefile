# The two commands: `make up` (the whole system on embedded defaults) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up test lint bootstrap format clean

bootstrap:
	@scripts/bootstrap.sh

up: bootstrap
	$(BIN)/firewatch up

# Coverage of firewatch/ by the suite (lab/ excluded); the build fails below this floor.
COV_FLOOR ?= 90

lint: bootstrap
	$(BIN)/ruff check firewatch tests mosquitto
	$(BIN)/ruff format --check firewatch tests mosquitto
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite on plain PostgreSQL and, at the same time, on TimescaleDB (scripts/test.sh).
test: lint
	BIN=$(BIN) COV_FLOOR=$(COV_FLOOR) scripts/test.sh

format: bootstrap
	$(BIN)/ruff format firewatch tests mosquitto
	$(BIN)/ruff check --fix firewatch tests mosquitto

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
