"""--help names the defaults a user would otherwise guess (sampling, --lr, --batch, --max-len), and the train
scripts answer --help and a bad flag before JAX is imported."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, run_script, script_env


def flag_help(text: str, flag: str) -> str:
    """The help of one flag, its wrapped lines joined."""
    match = re.search(rf"^  {re.escape(flag)}\b.*?(?=^  -|^\S|\Z)", text, re.M | re.S)
    assert match, (flag, text)
    return " ".join(match.group(0).split())


@pytest.mark.parametrize("script, defaults", [
    ("gsm8k/generate.py", {"--temperature": "0.6", "--top-p": "0.95", "--top-k": "20", "--min-p": "0.0",
                           "--max-tokens": "32768"}),
    ("train/sft.py", {"--lr": "0.0002", "--batch": "8", "--max-len": "1024", "--warmup-steps": "20"}),
    ("train/grpo.py", {"--lr": "2e-05", "--batch": "8", "--temperature": "0.9", "--top-p": "1.0"}),
    ("train/eval.py", {"--batch": "8", "--max-new-tokens": "768"}),
])
def test_help_shows_the_defaults(script, defaults):
    result = run_script(script, "--help")
    assert result.returncode == 0, result.stderr
    for flag, value in defaults.items():
        assert re.search(rf"default:? {re.escape(value)}\b", flag_help(result.stdout, flag)), (flag, result.stdout)


@pytest.mark.parametrize("script, args, message", [
    ("train/sft.py", ["--data", "x", "--out", "y", "--fill-share", "2"], "--fill-share must be between 0 and 1"),
    ("train/grpo.py", ["--data", "x", "--out", "y", "--rewards", "format,nope"], "--rewards must be a comma-separated"),
    ("train/eval.py", ["--batch", "two"], "argument --batch: invalid int value"),
    ("train/export.py", ["--ckpt", "x"], "the following arguments are required: --out"),
])
def test_train_scripts_answer_a_bad_flag_before_importing_jax(script, args, message):
    """JAX's import takes seconds: a typo is answered before it (-X importtime lists every module imported)."""
    result = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / script), *args], capture_output=True,
                            text=True, env=script_env(), cwd=ROOT, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time")}
    assert result.returncode == 2 and message in result.stderr.splitlines()[-1], result.stderr[-500:]
    assert "argparse" in imported and "jax" not in imported


def test_what_the_readme_writes_is_git_ignored_and_help_names_only_files_in_the_repository():
    ignored = subprocess.run(["git", "check-ignore", "data/gsm8k.jsonl", "runs/sft/run.json", "export/hf/x"],
                             capture_output=True, text=True, cwd=ROOT)
    assert ignored.stdout.split() == ["data/gsm8k.jsonl", "runs/sft/run.json", "export/hf/x"]
    for command in ([], ["stats"], ["mix"], ["push"], ["compare"], ["convert"], ["view"]):
        text = run_script("crap.py", *command, "--help").stdout
        assert "DESIGN.md" not in text and all((ROOT / name).is_file() for name in re.findall(r"\b[A-Z]+\.md", text))
