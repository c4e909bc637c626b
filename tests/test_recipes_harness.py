"""What the recipe tests share: load a recipe script as a module, build replies, run a generate.py for real.

Recipe folders are scripts, not packages, so a test loads `<folder>/generate.py` by path, with the folder on
sys.path only while it loads (the way Python runs the script), and runs it end to end as a subprocess
against the fake OpenAI-compatible server.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tunixhack.store import read_jsonl, sibling
from tunixhack.teachers.base import Reply

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FOLDER_MODULES = ("prompts",)   # a recipe folder's own helper modules: not shared between folders


def load_recipe(folder: str, script: str = "generate.py", name: str | None = None):
    """The module of `<folder>/<script>`, registered in sys.modules (Recipe.template_text reads it there)."""
    path = ROOT / folder / script
    name = name or f"recipe_{folder.lower()}"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
        for helper in FOLDER_MODULES:
            sys.modules.pop(helper, None)
    return module


def reply(content: str, reasoning: str = "Let me think this through.") -> Reply:
    return Reply(content=content, reasoning=reasoning, finish="stop", thinking_closed=True, model="qwen3-14b")


def generate(folder: str, source: Path, out: Path, teacher: str, *args: str) -> subprocess.CompletedProcess:
    """Run `<folder>/generate.py` as a user would; returns the finished process (stdout, stderr, returncode)."""
    command = [sys.executable, f"{folder}/generate.py", "--source", str(source), "--split", "train",
               "--teacher", teacher, "--out", str(out), "--concurrency", "4", "--backoff", "0.01", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)


def outputs(out: Path) -> tuple[dict, dict, list]:
    """(accepted rows by id, rejected rows by id, error rows) of a run that wrote to `out`."""
    rejects = read_jsonl(sibling(out, "rejects"))
    return {r["id"]: r for r in read_jsonl(out)}, {r["id"]: r for r in rejects}, read_jsonl(sibling(out, "errors"))
