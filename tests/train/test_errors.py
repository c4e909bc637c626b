"""Bad input: one clear line, exit code 2, no traceback."""

import pytest

from tests.train.conftest import TRACES, run_script

pytestmark = pytest.mark.train


@pytest.mark.parametrize("script, args, message", [
    ("sft.py", ["--model", "gemma3-1b-it", "--data", TRACES, "--out", "{tmp}/a"], "no Gemma3-1B-it weights found"),
    ("sft.py", ["--model", "{tmp}", "--data", TRACES, "--out", "{tmp}/a"], "is a folder but neither"),
    ("sft.py", ["--model", "gemma-7", "--data", TRACES, "--out", "{tmp}/a"], "--model must be tiny | gemma3-1b-it"),
    ("sft.py", ["--model", "tiny", "--data", "{tmp}/none.jsonl", "--out", "{tmp}/a"], "no such file or folder"),
    ("sft.py", ["--model", "tiny", "--data", "{tmp}", "--out", "{tmp}/a"], "has no split 'sft'"),
    ("sft.py", ["--model", "tiny", "--data", TRACES, "--out", "{tmp}/a", "--fill-share", "2"],
     "--fill-share must be between 0 and 1"),
    ("sft.py", ["--model", "tiny", "--data", TRACES, "--out", "{tmp}/a", "--mesh", "1,3"],
     "tp must divide the 4 attention heads"),
    ("sft.py", ["--model", "tiny", "--data", TRACES, "--out", "{tmp}/a", "--mesh", "2,1"], "needs 2 devices"),
    ("grpo.py", ["--model", "tiny", "--data", TRACES, "--out", "{tmp}/a", "--rewards", "format,nope"],
     "--rewards must be a comma-separated subset of format,math,choice,code,text,length,judge"),
    ("grpo.py", ["--model", "tiny", "--data", TRACES, "--out", "{tmp}/a", "--batch", "4", "--micro-batch", "3"],
     "--micro-batch must divide --batch 4"),
    ("grpo.py", ["--model", "tiny", "--data", TRACES, "--out", "{tmp}/a", "--rewards", "judge"], "needs --judge"),
    ("grpo.py", ["--model", "tiny", "--init", "{tmp}", "--data", TRACES, "--out", "{tmp}/a"], "has no run.json"),
    ("eval.py", ["--model", "tiny", "--data", TRACES, "--no-base"], "--no-base needs --ckpt"),
    ("eval.py", ["--model", "tiny"], "give --benchmark gsm8k|sciq|mbpp"),
    ("eval.py", ["--model", "tiny", "--benchmark", "mmlu"], "--benchmark must be gsm8k|sciq|mbpp"),
    ("eval.py", ["--model", "tiny", "--data", TRACES, "--source", TRACES], "--source is a local copy"),
    ("export.py", ["--ckpt", "{tmp}", "--out", "{tmp}/x"], "has no run.json"),
])
def test_bad_input_is_one_line_and_exit_2(script, args, message, train_env, tmp_path):
    result = run_script(script, *[str(a).format(tmp=tmp_path) for a in args], env=train_env, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
