"""What the recipe tests share: load a recipe script as a module, build replies, run a generate.py for real.

Recipe folders are scripts, not packages, so a test loads `<folder>/generate.py` by path
(tunixhack.generate.scripts), and runs it end to end as a subprocess against the fake OpenAI-compatible server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tunixhack.generate.scripts import load_script
from tunixhack.generate.store import read_jsonl, sibling
from tunixhack.teachers.base import Reply

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_recipe(folder: str, script: str = "generate.py", name: str | None = None):
    """The module of `<folder>/<script>`, registered in sys.modules (Recipe.template_text reads it there)."""
    return load_script(ROOT / folder / script, name or f"recipe_{folder.lower()}")


def reply(content: str, reasoning: str = "Let me think this through.") -> Reply:
    return Reply(content=content, reasoning=reasoning, finish="stop", thinking_closed=True, model="qwen3-14b")


def generate(folder: str, source: Path, out: Path, teacher: str, *args: str) -> subprocess.CompletedProcess:
    """Run `<folder>/generate.py` as a user would; returns the finished process (stdout, stderr, returncode)."""
    command = [sys.executable, f"{folder}/generate.py", "--source", str(source), "--split", "train",
               "--teacher", teacher, "--out", str(out), "--concurrency", "4", "--backoff", "0.01", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)


def run_fake(folder: str, source: Path, out: Path, rules: list[dict], *args: str):
    """Run `<folder>/generate.py` against a fake teacher answering by `rules` (the judge too, with --judge FAKE).
    Returns (process, accepted by id, rejected by id, errors, the user messages the fake received)."""
    from tests.fakes.openai_server import OpenAIFake

    with OpenAIFake({"rules": rules}) as fake:
        done = generate(folder, source, out, fake.url, *(fake.url if a == "FAKE" else a for a in args))
        sent = [body["messages"][-1]["content"] for body in fake.requests]
    return (done, *outputs(out), sent)


def check_parse(recipe, row: dict, content: str, expected: str | None):
    """Parse a literal reply: `expected` is the reject reason, or None for an answer kept as it is (and, with
    nothing to check against, unverified). Returns the Reject or the parsed fields."""
    from tunixhack.errors import Reject

    try:
        fields = recipe.parse(row, reply(content))
    except Reject as r:
        assert r.reason == expected, (r.reason, r.detail)
        return r
    assert expected is None and fields["answer"] == content.strip()
    assert recipe.check(row) is None and recipe.verify({"answer": content, "check": recipe.check(row)}) is None
    return fields


def outputs(out: Path) -> tuple[dict, dict, list]:
    """(accepted rows by id, rejected rows by id, error rows) of a run that wrote to `out`."""
    rejects = read_jsonl(sibling(out, "rejects"))
    return {r["id"]: r for r in read_jsonl(out)}, {r["id"]: r for r in rejects}, read_jsonl(sibling(out, "errors"))
