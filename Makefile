# Two entry points for a fresh clone: `make tour` (the main job) and `make test`.
# Each creates .venv and installs jaxgen with its test extras on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install tour test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

tour: $(VENV)/.installed
	$(BIN)/jaxgen tour --out runs/tour

# Two workers (pytest-xdist), one test file each at a time: the suite is compile-bound and mostly
# single-threaded, so two workers use both cores of a CI machine (times in README, Development).
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# Each benchmark prints the machine and library versions beside its ratios. On a shared or loaded
# machine add --threads 1 (one thread each, pinned): default thread pools collapse under contention.
bench: $(VENV)/.installed
	$(BIN)/python scripts/bench_gmm.py
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
