"""The real-model tier (issue 17, item 4): the train/ scripts, as a user types them, on google/gemma-3-270m.

One run of each script, shared by the tests below: sft.py on the 40 short trace rows of
tests/train/fixtures/traces.jsonl, eval.py of the base and that SFT run on held-out rows it never saw
(tests/train/fixtures/arithmetic_heldout.jsonl), two GRPO steps from it with the format and math rewards,
eval.py on the GSM8K fixture rows (tests/fixtures/gsm8k), export.py --gguf f16 of the GRPO run, and that GGUF
served by llama.cpp against Tunix on the exported hf/ (the round trip of item 3). The model is `--model FILE.gguf`
(the [dev] extra's Q4_K_M, dequantized to float32): every step runs in float32 on the CPU.

Measured (pytest -s prints it), 2 CPU cores shared with other engineers' tests: 7 min 30 s in all (sft 143 s,
eval of base and SFT 56 s, grpo 108 s, gsm8k eval 38 s, export 73 s, round trip 26 s), 8.1 GiB peak RSS (sft.py;
eval 3.3 GiB). On a busier machine the same run took 10 min 15 s. Figures of that run: held-out format
compliance 0/20 -> 20/20 after 16 SFT steps (accuracy 0/20 both: 16 steps teach the format, not arithmetic),
GSM8K fixture rows format 6/6, accuracy 0/6; round trip 19/20 identical.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from tests.helpers import HEAVY_MODULE_TIMEOUT_S
from tests.real import parity_texts
from tests.real.greedy import round_trip
from tests.train.conftest import metrics, run_script, train_env  # noqa: F401 (the training tests' environment)

pytestmark = [pytest.mark.train, pytest.mark.timeout(HEAVY_MODULE_TIMEOUT_S)]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRAIN_ROWS = Path(__file__).resolve().parents[1] / "train" / "fixtures" / "traces.jsonl"
HELDOUT_ROWS = TRAIN_ROWS.with_name("arithmetic_heldout.jsonl")  # not in tests/fixtures/traces: crap.py tests read those
GSM8K_ROWS = FIXTURES / "gsm8k" / "test.jsonl"
# Each step's cost is mostly the 262,144-word logits of every position, so few, short rows: prompt and completion
# fit 104 tokens; 4 rows a step at a rate LoRA takes in a few steps.
SFT_STEPS, SFT_BATCH, SFT_LEN = 16, 4, 104
SFT_FLAGS = ["--steps", SFT_STEPS, "--batch", SFT_BATCH, "--max-len", SFT_LEN, "--lora-rank", 16, "--lora-alpha", 32,
             "--lr", "2e-3", "--warmup-steps", 1, "--eval-frac", 0, "--eval-every", 1000, "--samples", 0]
GRPO_FLAGS = ["--steps", 2, "--batch", 2, "--generations", 2, "--max-new-tokens", 32, "--max-prompt-len", 96,
              "--rewards", "format,math"]
EVAL_FLAGS = ["--max-new-tokens", 40, "--batch", 20]
FORMAT_LIFT = 0.8  # held-out format compliance after SFT (the base model: about 0)
ROUND_TRIP_PROMPTS, ROUND_TRIP_TOKENS = 20, 16
RUNS: dict[str, dict] = {}  # script -> its wall seconds and its peak RSS (the report at the end)


def timed(name: str, script: str, *args, env: dict):
    """run_script, with its wall time and peak memory (the largest child so far: each run is a new child)."""
    started = time.monotonic()
    result = run_script(script, *args, env=env, timeout=900)
    RUNS[name] = {"seconds": time.monotonic() - started,
                  "peak_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20}
    return result


@pytest.fixture(scope="module")
def work(gemma_270m_gguf, train_env, tmp_path_factory):
    return tmp_path_factory.mktemp("gemma-train"), str(gemma_270m_gguf)


@pytest.fixture(scope="module")
def sft(work, train_env):
    folder, model = work
    out = folder / "sft"
    timed("sft", "sft.py", "--model", model, "--data", TRAIN_ROWS, "--out", out, *SFT_FLAGS, env=train_env)
    return out


@pytest.fixture(scope="module")
def heldout_eval(sft, train_env):
    out = sft.parent / "eval-heldout"
    timed("eval (held-out)", "eval.py", "--ckpt", sft, "--data", HELDOUT_ROWS, "--out", out, *EVAL_FLAGS,
          env=train_env)
    return json.loads((out / "eval.json").read_text())


@pytest.fixture(scope="module")
def grpo(sft, train_env):
    out = sft.parent / "grpo"
    timed("grpo", "grpo.py", "--init", sft, "--data", TRAIN_ROWS, "--out", out, *GRPO_FLAGS, env=train_env)
    return out


@pytest.fixture(scope="module")
def gsm8k_eval(grpo, train_env):
    out = grpo.parent / "eval-gsm8k"
    timed("eval (gsm8k)", "eval.py", "--ckpt", grpo, "--no-base", "--benchmark", "gsm8k", "--source", GSM8K_ROWS,
          "--out", out, *EVAL_FLAGS, env=train_env)
    return json.loads((out / "eval.json").read_text())


@pytest.fixture(scope="module")
def exported(grpo, train_env):
    out = grpo.parent / "export"
    timed("export", "export.py", "--ckpt", grpo, "--out", out, "--gguf", "f16", env=train_env)
    return out


def test_sft_lifts_held_out_format_compliance_under_the_real_tokenizer(heldout_eval):
    base, sft = heldout_eval["results"]["base"], next(r for k, r in heldout_eval["results"].items() if k != "base")
    n = len(HELDOUT_ROWS.read_text().splitlines())
    assert base["format"]["n"] == sft["format"]["n"] == n
    print(f"\nheld-out format compliance: base {base['format']['value']:.2f} -> SFT ({SFT_STEPS} steps) "
          f"{sft['format']['value']:.2f}; accuracy {base['accuracy']['value']:.2f} -> {sft['accuracy']['value']:.2f}")
    assert base["format"]["value"] <= 0.1
    assert sft["format"]["value"] >= FORMAT_LIFT, sft["format"]
    assert sft["step"] == SFT_STEPS


def test_sft_logs_the_real_tokens_of_each_step_over_its_wall_time(sft, train_env):
    """tokens_per_sec x step_seconds = the non-pad tokens of the step's batch, rebuilt here from the rows as
    sft.py orders them; the steps that compiled claim no speed; the steps' seconds fit in the run's own."""
    from tunixhack.train import data as traces
    from tunixhack.train import model as models

    source = models.resolve(json.loads((sft / "run.json").read_text())["model"])
    tok = models.load_tokenizer(source)
    ids = models.token_ids(tok)
    rows, _ = traces.read_rows(str(TRAIN_ROWS), "sft")
    examples = traces.tokenize_sft(rows, tok, ids, SFT_LEN).examples
    stream = traces.SftStream(examples, SFT_BATCH, 0, epochs=-(-SFT_STEPS * SFT_BATCH // len(examples)))
    real = [int((batch.input_tokens != ids["pad"]).sum()) for batch in stream]
    rows = metrics(sft)
    steps = [r for r in rows if "step_seconds" in r]
    assert [r["step"] for r in steps] == list(range(1, SFT_STEPS + 1))
    assert steps[0].get("compiled") == 1
    for r in steps:
        if r.get("compiled"):
            assert "tokens_per_sec" not in r, r
        else:
            assert r["tokens_per_sec"] * r["step_seconds"] == pytest.approx(real[r["step"] - 1], abs=0.01), r
    assert sum(not r.get("compiled") for r in steps) >= SFT_STEPS - 3  # compiling is the exception
    assert sum(r["step_seconds"] for r in steps) < RUNS["sft"]["seconds"]


def test_two_grpo_steps_log_the_format_and_math_rewards(grpo):
    rows = {r["step"]: r for r in metrics(grpo)}
    assert {1, 2} <= set(rows)
    for step in (1, 2):
        for key in ("rewards/format_reward", "rewards/math_reward", "kl", "loss", "completions/mean_length"):
            assert key in rows[step], (step, key)
        assert 0 <= rows[step]["rewards/format_reward"] <= 1 and 0 <= rows[step]["rewards/math_reward"] <= 1
    assert (grpo / "ckpts" / "actor" / "2" / "model_params").is_dir()


def test_eval_on_the_gsm8k_rows_reports_n_and_intervals(gsm8k_eval):
    protocol, (result,) = gsm8k_eval["protocol"], gsm8k_eval["results"].values()
    rows = len(GSM8K_ROWS.read_text().splitlines())
    assert protocol["benchmark"] == "gsm8k" and protocol["n"] == rows and result["step"] == 2
    for measure in ("accuracy", "format"):
        low, high = result[measure]["ci95"]
        assert result[measure]["n"] == rows and 0 <= low <= result[measure]["value"] <= high <= 1
    print(f"\ngsm8k fixture rows (n = {rows}): accuracy {result['accuracy']['value']:.2f} "
          f"{result['accuracy']['ci95']}, format {result['format']['value']:.2f} {result['format']['ci95']}")


def test_export_writes_the_adapter_hf_and_a_gguf_and_checks_them(exported):
    report = json.loads((exported / "export.json").read_text())
    assert (exported / "adapter" / "adapter_model.safetensors").is_file()
    assert (exported / "hf" / "model.safetensors").is_file() and report["hf_dtype"] == "float32"
    assert report["base_plus_adapter_vs_tunix_merge"] < 1e-5
    assert report["reloaded_hf_vs_merged_logits"] < 1e-3
    assert report["gguf"]["type"] == "f16" and Path(report["gguf"]["file"]).is_file()
    assert report["gguf"]["tokenizer_agrees"].split("/")[0] == report["gguf"]["tokenizer_agrees"].split("/")[1]


def test_the_trained_270m_as_an_f16_gguf_continues_on_llama_cpp_as_tunix_does(exported, llama_server_factory):
    """Half the prompts in the student's format (what it was trained on), half plain text."""
    from tunixhack.student import render_prompt

    held_out = [json.loads(line)["prompt"] for line in HELDOUT_ROWS.read_text().splitlines()]
    prompts = [render_prompt(p) for p in held_out[: ROUND_TRIP_PROMPTS // 2]]
    prompts += parity_texts.short_prompts(ROUND_TRIP_PROMPTS - len(prompts))
    started = time.monotonic()
    result = round_trip(exported, llama_server_factory, prompts, ROUND_TRIP_TOKENS)
    RUNS["round trip"] = {"seconds": time.monotonic() - started}
    same = result["same"]
    print(f"\nround trip (270M after SFT and GRPO, f16 GGUF): the first {ROUND_TRIP_TOKENS} greedy tokens agree on "
          f"{sum(same)}/{len(same)} prompts")
    assert sum(map(len, result["theirs"])) >= len(same) * 8  # continuations, not replies ended at once
    assert sum(same) >= 0.9 * len(same), [(t, o) for t, o, s in zip(result["theirs"], result["ours"], same)
                                          if not s][:3]
    total = sum(r["seconds"] for r in RUNS.values())
    print("tier: " + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in RUNS.items()) + f"; {total / 60:.1f} min; "
          f"peak RSS {max(r.get('peak_gib', 0) for r in RUNS.values()):.1f} GiB")
