#!/usr/bin/env bash
# Fill what scripts/device_check.sh needs on an offline GPU machine, into ignored folders that travel
# with the working tree:
#   .whl/   wheels for Python 3.12 (manylinux x86_64) of what that machine's Python lacks: ml-collections
#           (experiment configs), arviz with its pure-Python dependencies (only the Bayesian GMM's LOO uses
#           it), scikit-learn and its helpers (the estimators and the parity tests). device_check.sh installs
#           each one only when its module is missing there, into .whl/site (never into that Python itself).
#   .data/  mnist.npz (copied from ../shared/data, or $JAXGEN_DATA_DIR).
# Run it here, with network access to PyPI:  bash scripts/prepare_device_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p .whl .data
# pure-Python wheels, any platform
"$PY" -m pip download --quiet --only-binary=:all: --python-version 3.12 --no-deps -d .whl \
  "ml-collections==1.1.0" "arviz==0.23.4" xarray xarray-einstats h5netcdf threadpoolctl joblib
# compiled wheels for the GPU machine's CPython 3.12 on x86_64 Linux
"$PY" -m pip download --quiet --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --no-deps -d .whl "scikit-learn==1.9.1" pandas h5py
src=${JAXGEN_DATA_DIR:-../shared/data}/mnist.npz
[ -f "$src" ] || src=../shared/data/mnist.npz
cp -f "$src" .data/mnist.npz
echo "prepared:"; ls -la .whl .data; du -sh .whl .data
