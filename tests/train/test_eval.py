"""eval.py on the published benchmarks' test splits (local copies in their schemas): every row, the protocol
stated, base and checkpoints side by side, each accuracy with n and a 95% Wilson interval."""

import json

import pytest

from tests.train.conftest import ROOT, run_script

pytestmark = pytest.mark.train

FIXTURES = ROOT / "tests" / "fixtures"
SOURCES = {"gsm8k": FIXTURES / "gsm8k" / "test.jsonl", "sciq": FIXTURES / "sciq" / "train.jsonl",
           "mbpp": FIXTURES / "mbpp" / "full.jsonl"}


def test_wilson_intervals():
    from tunixhack.train.benchmarks import proportion, wilson

    assert wilson(5, 10) == [0.2366, 0.7634]
    assert wilson(0, 6) == [0.0, 0.3903] and wilson(6, 6) == [0.6097, 1.0]
    assert wilson(0, 0) is None
    lo, hi = wilson(660, 1319)  # GSM8K's test split at 50%: about +-2.7 points
    assert hi - lo == pytest.approx(0.054, abs=0.002)
    assert proportion(3, 4) == {"value": 0.75, "correct": 3, "n": 4, "ci95": wilson(3, 4)}


@pytest.mark.parametrize("benchmark", ["gsm8k", "sciq", "mbpp"])
def test_a_benchmark_is_evaluated_whole_with_its_protocol(benchmark, sft_run, train_env, tmp_path):
    rows = sum(1 for line in SOURCES[benchmark].read_text().splitlines() if line.strip())
    out = tmp_path / benchmark
    result = run_script("eval.py", "--model", "tiny", "--ckpt", sft_run, "--benchmark", benchmark, "--source",
                        SOURCES[benchmark], "--max-new-tokens", 8, "--batch", 4, "--out", out, env=train_env)
    report = json.loads((out / "eval.json").read_text())
    protocol = report["protocol"]
    assert protocol["shots"] == 0 and protocol["n"] == protocol["rows_in_split"] == rows
    assert protocol["split"] == "test (as copied in --source)" and protocol["source"] == str(SOURCES[benchmark])
    assert protocol["decoding"] == {"greedy": True, "temperature": 1e-4, "top_k": 1, "top_p": 1.0, "seed": 42}
    assert "<answer></answer>" in protocol["prompt_template"] and protocol["extraction"]
    assert protocol["max_new_tokens"] == 8
    assert (protocol["isolation"] is not None) == (benchmark == "mbpp")  # named when model-written code runs
    if benchmark == "mbpp":
        from tunixhack.verify import code

        assert protocol["isolation"]["level"] == code.isolation()
    assert list(report["results"]) == ["base", str(sft_run)]
    for model in report["results"].values():
        accuracy = model["accuracy"]
        assert accuracy["n"] == rows and accuracy["ci95"] and 0 <= accuracy["ci95"][0] <= accuracy["ci95"][1] <= 1
    assert report["results"][str(sft_run)]["step"] == 30
    assert f"Evaluated on {benchmark}:" in result.stdout and "95% CI" in result.stdout
    title = (out / "eval.md").read_text().splitlines()[0]  # says what was measured, and on which models
    assert title == f"# {benchmark} ({protocol['dataset']}): tiny (base), {sft_run} (step 30)"
