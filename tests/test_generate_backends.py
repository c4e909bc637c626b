"""gsm8k/generate.py over the LM Studio protocol (real lmstudio SDK) and over several endpoints at once."""

from __future__ import annotations

import json

from tests.fakes.lmstudio_server import LMStudioFake
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.script import Script
from tests.helpers import read_rows, run_script, sibling
from tests.test_generate_gsm8k import ARGS, SCRIPT


def test_lmstudio_backend_end_to_end(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with LMStudioFake(Script.from_dict(SCRIPT)) as fake:
        result = run_script("gsm8k/generate.py", *ARGS, "--teacher", f"lmstudio://{fake.host}", "--out", out)
        configs = [p["config"] for p in fake.predictions]
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in read_rows(out)}
    rejects = {r["id"]: r["reason"] for r in read_rows(sibling(out, "rejects"))}
    assert {k: r["verified"] for k, r in rows.items()} == {f"gsm8k/test/{i}": True for i in (0, 1, 2, 5)}
    assert rejects == {"gsm8k/test/3": "verify_failed", "gsm8k/test/4": "thinking_not_closed"}
    janet = rows["gsm8k/test/0"]
    assert janet["reasoning"] == "16-3-4=9 eggs, 9*2=18 dollars." and janet["answer"] == "She makes \\boxed{18} dollars."
    assert janet["teacher"]["backend"] == "lmstudio" and janet["teacher"]["endpoint"] == f"lmstudio://{fake.host}"
    assert janet["usage"]["completion_tokens"] > 0 and janet["finish"] == "stop"
    assert all(c["temperature"] == 0.6 and c["topKSampling"] == 20 for c in configs)


def test_lmstudio_unknown_model_is_one_line(tmp_path):
    with LMStudioFake(Script.from_dict(SCRIPT)) as fake:
        result = run_script("gsm8k/generate.py", *ARGS, "--teacher", f"lmstudio://{fake.host}",
                            "--out", tmp_path / "o.jsonl", "--model", "qwen9")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "qwen9" in result.stderr.strip().splitlines()[-1]


def test_requests_spread_over_endpoints_and_a_failing_one_is_benched(tmp_path):
    rows = tmp_path / "many.jsonl"
    rows.write_text("".join(json.dumps({"question": f"Item {i}: 1+1?", "answer": "#### 2"}) + "\n" for i in range(30)))
    healthy = {"default": {"content": "\\boxed{2}"}, "latency": 0.05}
    broken = {"default": {"fail": 10_000, "status": 503}}
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(healthy) as a, OpenAIFake(healthy) as b, OpenAIFake(broken) as c:
        result = run_script("gsm8k/generate.py", "--source", rows, "--split", "test", "--out", out,
                            "--teacher", a.url, "--teacher", b.url, "--teacher", c.url,
                            "--concurrency", "4", "--backoff", "0.01", "--retries", "8")
        served = (len(a.requests), len(b.requests), len(c.requests))
    assert result.returncode == 0, result.stderr
    assert len(read_rows(out)) == 30 and not sibling(out, "errors").exists()
    assert served[0] >= 1 and served[1] >= 1  # both healthy servers took work
    assert "out of rotation" in result.stderr and c.url in result.stderr
