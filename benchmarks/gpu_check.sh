#!/usr/bin/env bash
# The GPU check (issue 13, item 6): one table of slide reading (cuCIM cuda vs cpu), bf16 patch encoding
# (DINOv2 ViT-L/14, ResNet-50-trunc), the released training step at N = 30,000 / 100,000 and beam-3
# decoding, on one GPU in under 8 minutes, with random local weights only (nothing is downloaded).
#
#   bash benchmarks/gpu_check.sh            # on a GPU machine
#   bash benchmarks/gpu_check.sh --dry-run  # every stage on tiny inputs on the CPU (what CI runs)
#
# PYTHON picks the interpreter (default: .venv/bin/python of the repository, else python3).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
echo "gpu_check: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), load: $(uptime | sed 's/.*load average: //')"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
start=$(date +%s)
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$python" -m benchmarks.gpu_check "$@"
echo "gpu_check: $(( $(date +%s) - start )) s"
