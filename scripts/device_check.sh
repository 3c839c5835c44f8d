#!/usr/bin/env bash
# One command for an accelerator machine: what the device is, the tests that matter run on it, the
# benchmarks' accelerator figures, and a shortened Burda et al. VAE run. About 9 minutes on one GPU
# (estimated: the disentangling and VAE-GAN sections have not run on a GPU yet).
#
#   bash scripts/prepare_device_check.sh      # here, with network: fills .whl/ and .data/ (ignored folders)
#   bash scripts/device_check.sh              # there: no network, its own Python with jax (CUDA), flax, ...
#   DEVICE_CHECK_SMALL=1 bash scripts/device_check.sh   # tiny sizes (a CPU run of every section, a few minutes)
#
# The machine's own Python is used as it is (PYTHON, default python3; .venv/bin/python here when it
# exists and PYTHON is unset). jaxgen comes from src/ on PYTHONPATH; what that Python lacks of
# jaxgen's dependencies is installed from .whl/*.whl with `pip --no-index --no-deps` into .whl/site
# (added to PYTHONPATH; the machine's Python itself is left alone). MNIST is read from .data/
# (JAXGEN_DATA_DIR). Every section prints a header and its figures; a failing section is reported
# and the next one runs; the exit status is the number of failed sections.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
SMALL=${DEVICE_CHECK_SMALL:-0}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ] && [ "$SMALL" = 1 ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT/src:$ROOT/.whl/site${PYTHONPATH:+:$PYTHONPATH}"
export JAXGEN_DATA_DIR=${JAXGEN_DATA_DIR:-$ROOT/.data}
export JAXGEN_EXPERIMENTS_DIR=${JAXGEN_EXPERIMENTS_DIR:-$ROOT/experiments}
export MPLBACKEND=Agg
OUT=${OUT:-$ROOT/runs/device_check}
mkdir -p "$OUT"
FAILED=0
T0=$(date +%s)

section() { echo; echo "==================== $* ($(( $(date +%s) - T0 )) s elapsed)"; }
run() {  # run LIMIT_S CMD...: a section's command under a time limit; a failure is counted, not fatal
  local limit=$1; shift
  timeout "$limit" "$@"
  local rc=$?
  if [ $rc -ne 0 ]; then
    FAILED=$((FAILED + 1))
    if [ $rc -eq 124 ]; then echo "!! timed out after ${limit} s: $*"; else echo "!! failed (exit $rc): $*"; fi
  fi
}

section "setup: Python, missing dependencies from .whl/"
"$PYTHON" --version
# wheel file name prefix -> module it provides; installed only when that module is missing here
declare -A MODULE=([ml_collections]=ml_collections [arviz]=arviz [xarray]=xarray [xarray_einstats]=xarray_einstats
                   [h5netcdf]=h5netcdf [h5py]=h5py [pandas]=pandas [scikit_learn]=sklearn [threadpoolctl]=threadpoolctl
                   [joblib]=joblib)
todo=()
for whl in .whl/*.whl; do
  [ -e "$whl" ] || { echo "no wheels in .whl/ (run scripts/prepare_device_check.sh where there is network)"; break; }
  dist=$(basename "$whl"); dist=${dist%%-*}
  mod=${MODULE[$dist]:-$dist}
  if "$PYTHON" -c "import $mod" 2>/dev/null; then echo "  present: $mod"; else echo "  to install: $dist"; todo+=("$whl"); fi
done
if [ ${#todo[@]} -gt 0 ]; then
  run 120 "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$ROOT/.whl/site" "${todo[@]}"
fi
[ -f "$JAXGEN_DATA_DIR/mnist.npz" ] && echo "MNIST: $JAXGEN_DATA_DIR/mnist.npz" || echo "!! no mnist.npz in $JAXGEN_DATA_DIR (run scripts/prepare_device_check.sh)"

section "device"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
else
  echo "nvidia-smi: not found (no NVIDIA GPU here)"
fi
run 120 "$PYTHON" -c "
import jax
print('jax.devices():', jax.devices())
print('default backend:', jax.default_backend(), '| x64:', jax.config.jax_enable_x64)
import sys; sys.path.insert(0, 'scripts')
from _machine import print_machine; print_machine(['scikit-learn', 'torch', 'ml-collections', 'arviz'])
"

section "tests on the device (GMM, VAE, training core)"
# The suite's conftest adds 4 virtual CPU devices; on a GPU machine the models run on the GPU (the
# default backend) and the sharding tests use the virtual CPU devices.
TESTS="tests/test_gmm.py tests/test_vae.py tests/test_train.py"
if [ "$SMALL" = 1 ]; then
  run 600 "$PYTHON" -m pytest -q -x -p no:cacheprovider tests/test_gmm.py -k "parity or never_decreases"
else
  run 240 "$PYTHON" -m pytest -q -x -p no:cacheprovider $TESTS
fi

section "benchmark: full-covariance GMM EM (jaxgen only; scikit-learn would take minutes)"
if [ "$SMALL" = 1 ]; then GMM_N=20000; else GMM_N=10000000; fi
run 240 "$PYTHON" scripts/bench_gmm.py --n $GMM_N --d 16 --k 16 --iters 20 --repeats 3 --no-sklearn \
  --json "$OUT/bench_gmm.json"

section "benchmark: VAE epoch of the Burda model (784-200-200-50, batch 20, 59 600 images; jaxgen loops)"
if [ "$SMALL" = 1 ]; then VAE_ARGS="--n-train 600 --rounds 1 --k 20 --n-eval 20"; else VAE_ARGS="--n-train 59600 --rounds 2"; fi
run 240 "$PYTHON" scripts/bench_vae.py --batch 20 --threads 0 --no-torch $VAE_ARGS --json "$OUT/bench_vae.json"

section "benchmark: GAN training steps (DCGAN on MNIST, batch 64; ring MLPs 4 x 400, batch 100); PyTorch eager when installed"
# GPU-sized rounds (100 DCGAN / 1000 MLP steps); no torch.compile, no fit_trainer re-run: ~1 minute
if [ "$SMALL" = 1 ]; then GAN_ARGS="--quick"; else GAN_ARGS="--steps 100 --rounds 3 --no-compile --no-fit-check"; fi
run 150 "$PYTHON" scripts/bench_gan.py --threads 0 $GAN_ARGS --json "$OUT/bench_gan.json"

section "benchmark: PixelCNN (gated, default config, batch 64): training steps, PyTorch eager when installed; sampling 16 images naive vs cached"
# 50 steps per round, 3 rounds; sampling n = 16, 2 rounds per method, and the PyTorch naive sampler;
# no torch.compile, no fit re-run
if [ "$SMALL" = 1 ]; then PIX_ARGS="--quick"; else PIX_ARGS="--steps 50 --rounds 3 --n-sample 16 --sample-rounds 2 --no-compile --no-fit-check"; fi
run 180 "$PYTHON" scripts/bench_pixelcnn.py --threads 0 $PIX_ARGS --json "$OUT/bench_pixelcnn.json"

section "benchmark: disentangling objectives (beta-TCVAE, FactorVAE; conv VAE 32-32-64-64 on 64 x 64 sprites, batch 64); PyTorch eager when installed"
# the accelerator protocol's conv networks, 50 steps per round, 3 rounds; no torch.compile
if [ "$SMALL" = 1 ]; then DIS_ARGS="--quick"; else DIS_ARGS="--archs conv --steps 50 --rounds 3 --no-compile"; fi
run 180 "$PYTHON" scripts/bench_disentangle.py --threads 0 $DIS_ARGS --json "$OUT/bench_disentangle.json"

section "benchmark: VAE-GAN training steps (vaegan_mnist's default networks, MNIST, batch 64, RMSProp); PyTorch eager when installed"
# 50 steps per round, 3 rounds; no torch.compile
if [ "$SMALL" = 1 ]; then VG_ARGS="--quick"; else VG_ARGS="--steps 50 --rounds 3 --no-compile"; fi
run 120 "$PYTHON" scripts/bench_vaegan.py --threads 0 $VG_ARGS --json "$OUT/bench_vaegan.json"

section "shortened Burda et al. run (vae_mnist protocol=burda burda_stages=2: 4 epochs, k=5000 on 10 000 test images; SMALL: --quick)"
if [ "$SMALL" = 1 ]; then
  # the Burda protocol's evaluation (k=5000 on 10 000 images) is for an accelerator: here the QUICK settings
  run 600 "$PYTHON" -m jaxgen run vae_mnist --quick --out "$OUT/vae_mnist_quick"
  METRICS="$OUT/vae_mnist_quick/metrics.json"
else
  run 300 "$PYTHON" -m jaxgen run vae_mnist protocol=burda burda_stages=2 --out "$OUT/vae_mnist_burda2"
  METRICS="$OUT/vae_mnist_burda2/metrics.json"
fi
if [ -f "$METRICS" ]; then
  "$PYTHON" - "$METRICS" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
def show(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            show(v, f"{prefix}{k}.")
        elif isinstance(v, (int, float, str, bool)) and len(str(v)) < 120:
            print(f"  {prefix}{k} = {v}")
show(m)
PY
fi

section "done: $FAILED failed section(s); outputs in $OUT"
exit $FAILED
