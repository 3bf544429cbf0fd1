# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv with the pinned dependencies (constraints.txt) if it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.initlab-installed

.PHONY: install demo test lint typecheck pytest numerics clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned in constraints.txt: an unpinned torch would pull GBs of CUDA wheels.
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
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
NUMERICS := ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 OMP_NUM_THREADS=1 \
	TORCHINDUCTOR_CACHE_DIR=$${TMPDIR:-/tmp}/torchinductor_avx2_$$(id -un) \
	$(BIN)/python -m pytest -q -m numerics tests

pytest: install
	$(BIN)/python -m pytest -q
	$(NUMERICS)

numerics: install
	$(NUMERICS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
