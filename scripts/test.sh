#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)  # spoken digits for the audio benchmark's data
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# UCI tables (LetterRecognition, Satellite) from Debian's r-cran-mlbench, unpacked without installing R
mlbench="$HOME/.cache/selfsup/mlbench"
if [ ! -d "$mlbench/usr/lib/R/site-library/mlbench/data" ] && command -v apt-get >/dev/null 2>&1; then
  tmp=$(mktemp -d) && (cd "$tmp" && apt-get download -qq r-cran-mlbench >/dev/null 2>&1 && mkdir -p "$mlbench" \
    && dpkg -x r-cran-mlbench_*.deb "$mlbench") || echo "r-cran-mlbench not available; its tests will skip"
  rm -rf "$tmp"
fi
export SELFSUP_DATA_DIR="$mlbench"
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[test]"
lint-imports  # the layering contracts of pyproject.toml [tool.importlinter]
# bytecode is cached (__pycache__, ignored by git) whatever the machine's default: the commands the tests start do not
# compile selfsup again each time, nor a test worker rewrite the assertions of test files another worker rewrote
unset PYTHONDONTWRITEBYTECODE
# three worker processes (pytest-xdist) for two cores: a worker waiting on the processes its test started (torchrun,
# a browser, a server) leaves a core to the others; one torch thread each (tests/conftest.py); each test file on one
# worker in its order (files share module-scoped runs among their tests); no file may rely on another having run
python3 -m pytest -n 3 --dist loadfile tests --ignore=tests/reference "$@"
# Reference checks (tests/reference/) run in their own environment: torch 2.14.1 + torchvision + LightlySSL 1.6.0
REF_PY=$(bash scripts/reference_env.sh)
SELFSUP_REFERENCE_REQUIRED=1 "$REF_PY" -m pytest tests/reference "$@"
