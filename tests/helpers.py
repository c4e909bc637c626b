"""Run the project's scripts the way users do: as subprocesses, with a clean environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
# pytest-timeout's limit (pyproject: 600 s) counts a test's fixture setup too, so a module whose shared fixture runs
# a real training script or a 51-slot llama.cpp pass inside its first test gets more: minutes quiet, several times
# that on a loaded 2-core machine. Still a limit, so a hang fails; the scripts inside have their own, lower.
HEAVY_MODULE_TIMEOUT_S = 2400


def script_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "LMSTUDIO", "HF_TOKEN"))}
    # No network here: the Hub must answer at once that it is offline rather than time out.
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def run_script(script: str, *args, timeout: float = 120, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=popen.pop("env", None) or script_env(), cwd=popen.pop("cwd", ROOT),
                          **popen)


def start_script(script: str, *args, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=script_env(), cwd=ROOT, **popen)


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def whole_rows(path: Path) -> list[dict]:
    """The rows of a file another process is writing, or was killed writing: whole lines only (read_rows would
    meet the one being written)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def replies_in_turn(url: str, model: str, prompts: list[str], **sampling) -> list:
    """One OpenAI-compatible teacher's replies to each prompt, one after another, checked first as the engine
    does (the check is where it learns what server it talks to)."""
    import asyncio

    from tunixhack.teachers.base import Sampling
    from tunixhack.teachers.openai_compat import OpenAITeacher

    async def run():
        teacher = OpenAITeacher(url, model)
        try:
            await teacher.check()
            return [await teacher.complete([{"role": "user", "content": p}], Sampling(**sampling)) for p in prompts]
        finally:
            await teacher.close()

    return asyncio.run(run())


def sibling(out: Path, kind: str) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + f".{kind}.jsonl")


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error a user sees: exit 2 and one line on stderr, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or lines[-1].startswith("error:"), result.stderr
    return lines[-1]
