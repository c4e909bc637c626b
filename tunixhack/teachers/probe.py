"""What a server says about how many requests it runs at once, read from its own reports.

- LM Studio 0.4+: `GET /api/v1/models` lists each model's loaded instances, and each instance's
  `config.parallel` ("Max Concurrent Predictions", `lms load --parallel N`; 4 by default).
- llama.cpp's llama-server: `GET /props` has `total_slots` (`--parallel N`).
- vLLM: `GET /metrics` (Prometheus text) names no slot count, but its `vllm:` metrics say it is vLLM, a server
  built for large batches: start at VLLM_START and let the adaptive limit find the rest.
LM Studio's and llama.cpp's numbers are slots: requests beyond them only wait in the server's queue. The
readers take the body's text and return a number or None; a body in another shape is None, never an error.
"""

from __future__ import annotations

import json

PROBE_TIMEOUT_S = 5.0
VLLM_START = 64  # vLLM's scheduler runs up to 256 sequences by default; 64 is a safe first step


def lmstudio_parallel(text: str, model: str) -> int | None:
    """The `parallel` of the loaded instance serving `model` (matched by key or instance id)."""
    try:
        models = json.loads(text).get("models")
    except (ValueError, AttributeError):
        return None
    for entry in models if isinstance(models, list) else ():
        if not isinstance(entry, dict):
            continue
        for instance in entry.get("loaded_instances") or ():
            if model not in (entry.get("key"), instance.get("id")):
                continue
            parallel = (instance.get("config") or {}).get("parallel")
            if isinstance(parallel, int) and parallel > 0:
                return parallel
    return None


def vllm_start(text: str) -> int | None:
    return VLLM_START if "vllm:num_requests_running" in text else None


def llama_cpp_slots(text: str) -> int | None:
    """llama-server's `total_slots` from GET /props (its `--parallel`)."""
    try:
        slots = json.loads(text).get("total_slots")
    except (ValueError, AttributeError):
        return None
    return slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else None
