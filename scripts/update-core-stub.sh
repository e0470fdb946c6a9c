#!/usr/bin/env bash
# Regenerate the committed type stub src/profilemate/_core.pyi from the C++ bindings: builds the
# module (build/core-stub), runs nanobind's stub generator on it and copies the result over the
# reference. Run it after changing cpp/bindings/module.cpp (or anything _core exposes), and commit
# the stub with the change; `pip install` with PROFILEMATE_CHECK_STUB=ON (scripts/setup.sh) fails
# while the two differ.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PROFILEMATE_VENV:-$ROOT/.venv}"
BUILD="$ROOT/build/core-stub"
[[ -x "$VENV/bin/python" ]] || { echo "no virtual environment at $VENV: run scripts/setup.sh (or set PROFILEMATE_VENV)" >&2; exit 1; }
# The same interpreter and tools as `pip install` in scripts/setup.sh, so the stub is the one the
# build check compares against.
"$VENV/bin/cmake" -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" \
  -DPython_EXECUTABLE="$VENV/bin/python" -DCMAKE_BUILD_TYPE=Release -DPROFILEMATE_BUILD_PYTHON=ON \
  -DPROFILEMATE_BUILD_TESTS=OFF -DPROFILEMATE_BUILD_BENCH=OFF -DPROFILEMATE_WERROR=OFF \
  -DPROFILEMATE_CHECK_STUB=OFF >/dev/null
"$VENV/bin/cmake" --build "$BUILD" --target update_core_stub -j2
git -C "$ROOT" diff --stat -- src/profilemate/_core.pyi || true
