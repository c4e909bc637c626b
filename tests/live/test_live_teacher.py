"""Against a real teacher: run with `pytest tests/live --live`.

LIVE_TEACHER picks the server (default `lmstudio`, the LM Studio on this machine; or lmstudio://HOST:PORT, or
http://HOST:PORT/v1) and LIVE_MODEL the model (default qwen3-14b). Two GSM8K rows, a short budget.
"""

import os

from tests.helpers import FIXTURES, read_rows, run_script, sibling

TEACHER = os.environ.get("LIVE_TEACHER", "lmstudio")
MODEL = os.environ.get("LIVE_MODEL", "qwen3-14b")


def test_two_gsm8k_rows_through_a_real_teacher(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    result = run_script("gsm8k/generate.py", "--source", FIXTURES / "gsm8k" / "test.jsonl", "--split", "test",
                        "--limit", "2", "--teacher", TEACHER, "--model", MODEL, "--max-tokens", "4096",
                        "--out", out, timeout=1800)
    assert result.returncode in (0, 1), result.stderr
    rows = read_rows(out) + read_rows(sibling(out, "rejects"))
    assert len(rows) == 2
    for row in rows:
        assert row["teacher"]["model"] == MODEL and row["usage"]["completion_tokens"]
        assert row["reasoning"], "a thinking model should leave its reasoning separated from the answer"
