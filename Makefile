# saleor-crm-plugin developer commands. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
# Python 3.12 (what Saleor 3.23 runs); pyenv's 3.12.1 when present, else whatever python3.12 is.
PYTHON ?= $(shell if command -v pyenv >/dev/null 2>&1 && pyenv prefix 3.12.1 >/dev/null 2>&1; then echo "$$(pyenv prefix 3.12.1)/bin/python3.12"; else command -v python3.12 || command -v python3.11 || command -v python3; fi)
BIN := $(VENV)/bin
CONSTRAINTS := constraints/saleor-3.23.txt

.PHONY: help install demo test lint format services bench clean

help:  ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e . --group dev -c $(CONSTRAINTS)
	touch $@

install: $(BIN)/.installed  ## Create .venv with the package, its dev tools and Saleor's pins

demo: install  ## Run the demo on embedded defaults (SQLite, no broker)
	$(BIN)/saleor-crm demo

services:  ## Start PostgreSQL and Redis if they are down
	bash .ci/services

test: install services  ## Lint, then run the whole test suite on PostgreSQL and Redis
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django makemigrations --check --dry-run saleor_crm_plugin
	$(BIN)/pytest -q

lint:  ## ruff check and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format:  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:  ## Remove the virtualenv and build outputs
	rm -rf $(VENV) build dist *.egg-info
