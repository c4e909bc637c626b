#!/usr/bin/env bash
# Real-size Gemma3-1B step times, memory and MFU on this machine's accelerator (see bench/device_check.py).
# One command, under 8 minutes; on a CPU it says there is no accelerator and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec timeout 480 env PYTHONUNBUFFERED=1 "$PYTHON" bench/device_check.py "$@"
