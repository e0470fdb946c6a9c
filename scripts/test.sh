#!/usr/bin/env bash
# Set up everything (idempotent) and run every test: the C++ unit tests (GoogleTest via ctest),
# the same under AddressSanitizer and ThreadSanitizer, then the Python unit tests and the
# end-to-end tests on real vLLM (pytest). Exits non-zero on any failure, including a failed setup.
# Extra arguments go to pytest (e.g. -k preempt, -m "not vllm").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PROFILEMATE_VENV:-$ROOT/.venv}"

# The other interpreters the import watchdog, registry, probe and C++-wrapper tests run on (below).
# Checked first, so that a missing one fails the run at once, named, instead of after the long stages.
# vLLM here runs on 3.11; older vLLM releases run on 3.10, the seed tool died on 3.12's import
# system, and the C++ wrapper uses version-specific CPython APIs (3.12's PyErr_GetRaisedException).
OTHER_PYTHONS=(3.10 3.12 3.13)
find_python() {  # prints the interpreter for version $1 (pyenv's, else pythonX.Y on PATH), or nothing
  local v=$1 py
  py=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python 2>/dev/null | sort -V | tail -1 || true)
  if [[ -z "$py" ]] && "python$v" -c '' 2>/dev/null; then py=$(command -v "python$v"); fi
  printf '%s' "$py"
}
missing=()
for v in "${OTHER_PYTHONS[@]}"; do [[ -n "$(find_python "$v")" ]] || missing+=("$v"); done
if ((${#missing[@]})); then
  for v in "${missing[@]}"; do
    printf '[test] ERROR: python%s not found (looked for %s and for python%s on PATH); the watchdog, registry, probe and C++-wrapper tests must run on it. Install it (pyenv install %s, or your distribution'"'"'s python%s with venv) and run this script again.\n' \
      "$v" "${PYENV_ROOT:-$HOME/.pyenv}/versions/$v.*/bin/python" "$v" "$v" "$v" >&2
  done
  exit 1
fi

bash "$ROOT/scripts/setup.sh"

echo "== lint: ruff, clang-format, layering =="
cd "$ROOT"
"$VENV/bin/ruff" check src tests bench
"$VENV/bin/ruff" format --check src tests bench
find cpp tests/cpp bench \( -name '*.cpp' -o -name '*.hpp' \) -print0 | xargs -0 -r clang-format --dry-run -Werror
# Includes and imports point the way the layers allow (cpp/LAYERS.md); no vLLM in cpp/.
"$VENV/bin/python" scripts/check_layering.py

echo "== C++ unit tests (GoogleTest) =="
BUILD="$ROOT/build/cpp-tests"
"$VENV/bin/cmake" -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROFILEMATE_BUILD_TESTS=ON -DPROFILEMATE_BUILD_PYTHON=OFF >/dev/null
"$VENV/bin/cmake" --build "$BUILD" -j2
"$VENV/bin/ctest" --test-dir "$BUILD" --output-on-failure --timeout 300

echo "== C++ unit tests under AddressSanitizer (+LeakSanitizer) and ThreadSanitizer =="
# Separate build folders, kept between runs (incremental). Any sanitizer report fails the test it
# happens in, death-test children included (halt_on_error).
for san in address thread; do
  SBUILD="$ROOT/build/cpp-$([[ $san == address ]] && echo asan || echo tsan)"
  "$VENV/bin/cmake" -S "$ROOT" -B "$SBUILD" -G Ninja -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" \
    -DCMAKE_BUILD_TYPE=Debug -DPROFILEMATE_BUILD_TESTS=ON -DPROFILEMATE_BUILD_PYTHON=OFF \
    -DPROFILEMATE_SANITIZE="$san" >/dev/null
  "$VENV/bin/cmake" --build "$SBUILD" -j2
  ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:${ASAN_OPTIONS:-}" \
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
    "$VENV/bin/ctest" --test-dir "$SBUILD" --output-on-failure --timeout 300
done

echo "== import watchdog, registry, probe framework and the C++ wrapper on Python ${OTHER_PYTHONS[*]} =="
# These tests need no vLLM: each interpreter gets a small venv with the pinned build tools and this
# package built for it.
for v in "${OTHER_PYTHONS[@]}"; do
  py=$(find_python "$v")
  echo "-- python$v: $py"
  venv="$ROOT/build/venv-py$v"
  if [[ ! -x "$venv/bin/python" ]]; then "$py" -m venv "$venv"; fi
  "$venv/bin/python" -m pip -q --disable-pip-version-check install -r "$ROOT/requirements/dev.txt"
  "$venv/bin/python" -m pip -q --disable-pip-version-check install --no-build-isolation --no-deps "$ROOT"
  (cd "$ROOT/tests/python" && "$venv/bin/python" -m pytest -p no:cacheprovider -q -o addopts="" \
    test_watchdog.py test_registry.py test_probe_cpu_ops.py test_probe_framework.py \
    test_activation_units.py test_core_timed.py)
done

echo "== Python and end-to-end tests (pytest, real vLLM on CPU) =="
cd "$ROOT"
# Run against the installed package (what users get), not the source tree.
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
