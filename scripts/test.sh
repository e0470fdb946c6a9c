#!/usr/bin/env bash
# Set up everything (idempotent) and run every test: the C++ unit tests (GoogleTest via ctest),
# then the Python unit tests and the end-to-end tests on real vLLM (pytest). Exits non-zero on any
# failure, including a failed setup. Extra arguments go to pytest (e.g. -k preempt, -m "not vllm").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PROFILEMATE_VENV:-$ROOT/.venv}"
bash "$ROOT/scripts/setup.sh"

echo "== lint: ruff, clang-format =="
cd "$ROOT"
"$VENV/bin/ruff" check src tests bench
"$VENV/bin/ruff" format --check src tests bench
find cpp tests/cpp bench \( -name '*.cpp' -o -name '*.hpp' \) -print0 | xargs -0 -r clang-format --dry-run -Werror

echo "== C++ unit tests (GoogleTest) =="
BUILD="$ROOT/build/cpp-tests"
"$VENV/bin/cmake" -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROFILEMATE_BUILD_TESTS=ON -DPROFILEMATE_BUILD_PYTHON=OFF >/dev/null
"$VENV/bin/cmake" --build "$BUILD" -j2
"$VENV/bin/ctest" --test-dir "$BUILD" --output-on-failure --timeout 300

echo "== Python and end-to-end tests (pytest, real vLLM on CPU) =="
cd "$ROOT"
# Run against the installed package (what users get), not the source tree.
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
