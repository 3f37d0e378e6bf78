# Two commands a new user needs: `make up` (a local 3-node cluster) and `make test`.
.PHONY: setup up down status test lint catalogue rules reference lock image

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
	.venv/bin/mypy
	.venv/bin/pytest -q -p no:cacheprovider tests/unit/test_layers.py

# Unit tests (pure, no processes) on two workers; then the integration and e2e tests one at a time, since they
# start real servers and time real failovers (the 25 slowest are listed).
test: setup
	.venv/bin/ruff check src tests bench scripts
	.venv/bin/mypy
	.venv/bin/pytest -q -p no:cacheprovider -n 2 tests/unit
	.venv/bin/pytest -q -p no:cacheprovider --durations=25 tests/integration tests/e2e

catalogue: setup
	.venv/bin/python scripts/gen_guc_catalogue.py

rules: setup
	.venv/bin/pgkeel rules --markdown > docs/HA-RULES.md

reference: setup
	.venv/bin/python -c "from pgkeel.document.reference import reference_markdown as r; print(r(), end='')" > docs/reference.md

# After changing a dependency in pyproject.toml: resolve the tree in a fresh venv and pin all of it.
lock:
	rm -rf /tmp/pgkeel-lock-venv && /usr/bin/python3 -m venv /tmp/pgkeel-lock-venv
	/tmp/pgkeel-lock-venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
	{ head -2 requirements.lock; /tmp/pgkeel-lock-venv/bin/pip freeze --exclude-editable --disable-pip-version-check; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf /tmp/pgkeel-lock-venv

# The container image (Dockerfile) with podman, no registry needed: pgkeel:dev and pgkeel:src-<hash>,
# rebuilt only when the Dockerfile, src/, ext/, pyproject.toml or requirements.lock change.
image:
	@bash scripts/build_image.sh
