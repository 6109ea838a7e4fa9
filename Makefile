# Everything a new user needs: `make demo` and `make test` build the environment themselves.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PY := .venv/bin/python
STAMP := .venv/.synced

.PHONY: demo test test-chaos bench lint clean

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

demo: $(STAMP)
	.venv/bin/alignbot demo

test: $(STAMP)
	.venv/bin/pytest

test-chaos: $(STAMP)
	.venv/bin/pytest -m chaos tests/chaos

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	.venv/bin/ruff check .

clean:
	rm -rf .venv .tools .pytest_cache
