# Everything a new user needs: `make demo` and `make test` build the environment themselves.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PY := .venv/bin/python
STAMP := .venv/.synced

.PHONY: demo test test-chaos test-clock bench lint clean

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	@touch $@

demo: $(STAMP)
	.venv/bin/alignbot demo

test: $(STAMP)
	.venv/bin/pytest

test-chaos: $(STAMP)
	.venv/bin/pytest -m chaos tests/chaos

# The tests that read the sandbox world (built around the current hour), at other hours of the
# week: +4 h, +9 h, +15 h, +20 h, and across the next Sunday-to-Monday week boundary (`=`, not
# `:=`: the boundary is computed only when `make test-clock` runs).
CLOCK_SHIFTS = 4 9 15 20 $(shell python3 -c "import datetime as d; n = d.datetime.now(d.timezone.utc); print(round((7 - n.weekday()) * 24 - n.hour - n.minute / 60 - 0.05, 2))")
CLOCK_TESTS := tests/e2e tests/engine tests/connectors/test_sandbox.py \
	tests/connectors/test_sandbox_contract.py tests/connectors/test_rest.py \
	tests/chaos/test_crash_windows.py tests/ops/test_logs.py
test-clock: $(STAMP)
	set -e; for h in $(CLOCK_SHIFTS); do \
	  echo "== wall clock +$$h h"; \
	  ALIGNBOT_TEST_CLOCK_SHIFT_HOURS=$$h .venv/bin/pytest -q $(CLOCK_TESTS); \
	done

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	.venv/bin/ruff check .

clean:
	rm -rf .venv .tools .pytest_cache
