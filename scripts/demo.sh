#!/usr/bin/env bash
# The quick start's main job: set up (idempotent), then profile a short vLLM workload on a tiny
# locally generated model with the CPU build of vLLM, then report the run (`profilemate report`):
# print its summary.txt and say where report.html is.
# Extra arguments go to the workload (python -m profilemate.demo.workload --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PROFILEMATE_VENV:-$ROOT/.venv}"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$VENV/bin/python" -m profilemate.demo "$@"
