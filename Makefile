# Two commands a new user needs: `make up` (a local 3-node cluster) and `make test`.
.PHONY: setup up down status test lint catalogue

setup:
	@bash scripts/setup.sh

up: setup
	.venv/bin/pgkeel up

down: setup
	.venv/bin/pgkeel down

status: setup
	.venv/bin/pgkeel status

lint: setup
	.venv/bin/ruff check src tests bench scripts

test: setup
	.venv/bin/ruff check src tests bench scripts
	.venv/bin/pytest -q -p no:cacheprovider

catalogue: setup
	.venv/bin/python scripts/gen_guc_catalogue.py
