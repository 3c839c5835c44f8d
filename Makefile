# Two entry points for a fresh clone: `make tour` (the main job) and `make test`.
# Each creates .venv and installs jaxgen with its test extras on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# The data sets the tests need (`make data DATA="mnist frey"` fetches Frey Face too), and the command that fetches
# each one missing from the data folder, sha256-verified (where all are present it checks them, no network).
DATA ?= mnist
FETCH_DATA = for d in $(DATA); do $(BIN)/jaxgen data fetch $$d || exit 1; done

.PHONY: install tour data test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

tour: $(VENV)/.installed
	$(BIN)/jaxgen tour --out runs/tour

# The data folder of `make data` and the tests: $JAXGEN_DATA_DIR, else ../shared/data beside the checkout where it
# exists (the same rule as tests/conftest.py), else jaxgen's default, ~/.cache/jaxgen (an empty value means that).
data test: export JAXGEN_DATA_DIR ?= $(abspath $(wildcard ../shared/data))

data: $(VENV)/.installed
	@$(FETCH_DATA)

# `make data` first; where that fails (no network), the tests that need a missing data set skip, each with the
# one reason "data set 'mnist' is not in the data folder ...: run `make data`", and the run stays green.
# Three workers (pytest-xdist), one test file each at a time: the suite is compile-bound and mostly
# single-threaded; a third worker fills the gaps where a worker waits on a subprocess or the disk
# (2 cores: 10 min 35 s with three workers, 11 min 06 s with two; times in README, Development).
# TESTS: optional test files or pytest arguments (default: the whole suite).
test: $(VENV)/.installed
	@($(FETCH_DATA)) || echo "make test: the data sets above could not be fetched; the tests that need them will skip"
	$(BIN)/python -m pytest -q -n 3 --dist loadfile $(TESTS)

# Each benchmark prints the machine and library versions beside its ratios. On a shared or loaded
# machine add --threads 1 (one thread each, pinned): default thread pools collapse under contention.
bench: $(VENV)/.installed
	$(BIN)/python scripts/bench_gmm.py
	$(BIN)/python scripts/bench_small.py   # small data: GridSearchCV of 40 GMM fits and one fit, cold and warm, vs scikit-learn
	$(BIN)/python scripts/bench_ppca.py
	$(BIN)/python scripts/bench_bayes.py
	$(BIN)/python scripts/bench_vae.py --threads 1    # PyTorch eager and torch.compile columns: pip install -e '.[bench]'
	$(BIN)/python scripts/bench_vae.py --threads 2
	JAXGEN_DATA_DIR=$${JAXGEN_DATA_DIR:-../shared/data} $(BIN)/python scripts/bench_gan.py --threads 1   # MNIST-sized DCGAN and the ring MLPs
	JAXGEN_DATA_DIR=$${JAXGEN_DATA_DIR:-../shared/data} $(BIN)/python scripts/bench_pixelcnn.py --threads 1   # gated PixelCNN: training vs PyTorch, sampling naive vs cached
	JAXGEN_DATA_DIR=$${JAXGEN_DATA_DIR:-../shared/data} $(BIN)/python scripts/bench_vaegan.py --threads 1   # VAE-GAN training step vs PyTorch
	$(BIN)/python scripts/bench_disentangle.py --threads 1   # beta-TCVAE and FactorVAE on the sprites vs PyTorch

clean:
	rm -rf $(VENV) runs .pytest_cache
