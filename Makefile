# Everything runs inside .venv/ in the repo root, created from pyproject.toml.
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# apt-get needs root: CI runs as root; elsewhere sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup chromium demo test lint bench clean

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# The local CPU wheel first, so the torch range in pyproject pulls nothing more.
	$(PY) -m pip install --quiet torch==2.13.0
	# DS_BUILD_OPS=0: DeepSpeed (a dev extra) installs without compiling its CUDA ops.
	DS_BUILD_OPS=0 $(PY) -m pip install --quiet -e ".[dev]"
	# lmms-eval for the svit_llava plugin's tests, without the torchvision/video/judge packages it requires
	# and its evaluator never imports (what it does import is in the dev extra).
	$(PY) -m pip install --quiet --no-deps "lmms-eval==0.7.3"
	touch $@

# Debian's chromium, driven by Playwright in the Space's browser test (Playwright's own browser download needs
# the internet). Installed once; a no-op when it is there.
chromium:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

setup: .venv/.installed chromium

# The demo needs no browser: only the tests install chromium.
demo: .venv/.installed
	.venv/bin/svit demo --output out

# The suite runs on two workers (pytest-xdist), a module at a time, the modules with slow tests first
# (tests/conftest.py). The overfit tests run twice: under the machine's own torch CPU kernel (avx2, avx512...) and
# under the portable one, since their exact answers are what a different kernel's rounding could change. The
# second run (only the modules that hold overfit tests: collecting them all costs seconds) goes beside the first,
# in a folder of its own; its report follows the first's.
test: setup
	@portable=$$(mktemp -d); \
	ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -m overfit \
		--basetemp "$$portable/tmp" $$(grep -l "pytest.mark.overfit" tests/test_*.py) \
		> "$$portable/report.txt" 2>&1 & second=$$!; \
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=20; first=$$?; \
	wait $$second; portable_status=$$?; \
	echo "--- the overfit tests under ATEN_CPU_CAPABILITY=default:"; cat "$$portable/report.txt"; \
	rm -rf "$$portable"; \
	[ $$first -eq 0 ] && [ $$portable_status -eq 0 ]

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench: setup
	$(PY) bench/build.py

clean:
	rm -rf out .pytest_cache
