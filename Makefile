# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv with the pinned dependencies (constraints.txt) if it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.initlab-installed

.PHONY: install demo test lint typecheck pytest numerics clean chromium frontend frontend-check \
	frontend-test

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned in constraints.txt: an unpinned torch would pull GBs of CUDA wheels.
	# The lightning extra too: tests/test_lightning.py runs the callback in a real Trainer;
	# and the ray extra: tests/test_study_ray.py runs a study on a local Ray cluster;
	# and the bench extra: tests/test_benchmarks_stack.py checks JAX (D) against initlab.
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,lightning,ray,bench]'
	@touch $(STAMP)

install: $(STAMP)

# The flagship lesson needs MNIST, which initlab does not ship: fetched (from the known
# mirrors, checksums verified) only where no copy is found already.
demo: install
	@$(BIN)/python -c "from initlab import data; data.locate('mnist')" 2>/dev/null \
		|| $(BIN)/initlab data fetch mnist
	$(BIN)/initlab lesson init
	@echo "open initlab-reports/init/index.html in a browser to see the report"

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: install
	$(BIN)/mypy src

# The tests marked `numerics` depend on floating-point summation order (the lessons against
# published numbers, the stacked-vs-alone equivalences). The main run takes the CPU's own
# kernels (AVX-512 where it has them) and threads; this second pass takes the AVX2 kernels
# on one thread, so one `make test` checks both kernel families and both thread counts.
# Like any failing command it fails make, pytest's exit 5 (no test selected) included.
# It keeps its own torch.compile cache: torch 2.13 does not key that cache by the kernel
# family, and kernels cached under AVX-512 then loaded under AVX2 (or the reverse) gave
# wrong losses, NaN or a crash (double free) — in the user's own later runs too.
NUMERICS := ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 MKL_CBWR=AVX2,STRICT OMP_NUM_THREADS=1 \
	TORCHINDUCTOR_CACHE_DIR=$${TMPDIR:-/tmp}/torchinductor_avx2_$$(id -un) \
	$(BIN)/python -m pytest -q -m numerics tests

pytest: install chromium
	$(BIN)/python -m pytest -q
	$(NUMERICS)

numerics: install
	$(NUMERICS)

test: lint typecheck frontend-test pytest

# The playground's browser tests (tests/test_playground_browser.py) drive Debian's chromium:
# Playwright's own browser download is not reachable here. As root, apt installs it; otherwise
# the tests skip with the reason, except under CI=true, where a missing browser fails.
# The lock timeout waits for another apt/dpkg run instead of failing at once.
CHROMIUM := /usr/bin/chromium
APT_LOG  := $${TMPDIR:-/tmp}/initlab-apt-chromium.log

chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium with apt-get (the playground's browser tests drive it)"; \
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends -o DPkg::Lock::Timeout=600 chromium; } \
				>$(APT_LOG) 2>&1; then \
			tail -n 30 $(APT_LOG); \
			echo "error: apt-get could not install chromium (log above, in full: $(APT_LOG))"; \
			exit 1; \
		fi; \
		test -x $(CHROMIUM) || { echo "error: apt-get ran but $(CHROMIUM) is missing"; exit 1; }; \
	elif [ "$$CI" = true ]; then \
		echo "error: $(CHROMIUM) is missing and this is not root, so apt-get cannot install it;"; \
		echo "       CI=true: the playground's browser tests must run. Install it with:"; \
		echo "       sudo apt-get install --no-install-recommends chromium"; \
		exit 1; \
	else \
		echo "note: $(CHROMIUM) is missing, so the playground's browser tests will skip."; \
		echo "      To run them: sudo apt-get install --no-install-recommends chromium"; \
	fi

# The playground's page: TypeScript in frontend/, bundled by esbuild into
# src/initlab/playground/static/ (committed, so that pip install needs no Node).
STATIC := src/initlab/playground/static

frontend:
	cd frontend && npm ci --no-audit --no-fund && npm run typecheck && npm run build

# Builds a fresh copy of frontend/ (without node_modules) from package-lock.json in a
# temporary folder laid out like the repository, and fails, naming the files, if the
# committed $(STATIC) differs from what that build writes.
frontend-check:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir -p "$$tmp/frontend" "$$tmp/$(STATIC)"; \
	tar -C frontend --exclude=./node_modules -cf - . | tar -C "$$tmp/frontend" -xf -; \
	( cd "$$tmp/frontend" && npm ci --no-audit --no-fund --loglevel=error >/dev/null \
		&& npm run --silent typecheck && npm run --silent build >/dev/null ); \
	fresh="$$tmp/$(STATIC)"; bad=0; \
	for f in $$( { (cd "$$fresh" && find . -type f); (cd $(STATIC) && find . -type f); } \
			| sed 's|^\./||' | sort -u); do \
		if [ ! -f $(STATIC)/$$f ]; then echo "  $(STATIC)/$$f: missing (the build makes it)"; bad=1; \
		elif [ ! -f "$$fresh/$$f" ]; then echo "  $(STATIC)/$$f: committed, but the build does not make it"; bad=1; \
		elif ! cmp -s "$$fresh/$$f" $(STATIC)/$$f; then echo "  $(STATIC)/$$f: differs from a fresh build"; bad=1; \
		fi; \
	done; \
	if [ $$bad = 1 ]; then \
		echo "error: the committed $(STATIC)/ is not what a fresh build of frontend/ gives (files above);"; \
		echo "       run 'make frontend' and commit $(STATIC)/"; \
		exit 1; \
	fi; \
	echo "frontend-check: $(STATIC)/ matches a fresh build from frontend/package-lock.json"

# make test checks the built page when npm is there; under CI=true npm must be there.
frontend-test:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory frontend-check; \
	elif [ "$$CI" = true ]; then \
		echo "error: npm is not on the PATH; CI=true needs it to check $(STATIC)/"; \
		echo "       against a fresh build of frontend/ (install Node.js >= 20 with npm)"; \
		exit 1; \
	else \
		echo "note: npm is not on the PATH: skipping frontend-check (the committed page is used as is)"; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info test-artifacts
