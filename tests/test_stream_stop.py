"""Stopping on the stream (issue 18): a looping reply is cancelled on the wire at once and rejected as
repetition_loop with the tokens it spent, through both backends (LM Studio through the real SDK); budgets cut
as too_long only when set; what the teacher spent is counted by outcome in the summary."""

from __future__ import annotations

import ast
import json
import os
import time
import warnings
from pathlib import Path

import pytest

from tests.fakes.lmstudio_server import LMStudioFake
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.script import Script
from tests.helpers import FIXTURES, one_line_error, read_rows, run_script, script_env, sibling
from tests.test_generate_gsm8k import ARGS, SCRIPT
from tunixhack.teachers.watch import CHAR_SPAN, Budget, RepetitionWatch, Watch
from tunixhack.verify import quality

LOOP = "Wait, let me recount the eggs she sells at the market."
RATE = 400  # words a second: a loop run to the default 32,768 tokens would take 80 s
# Janet's reply loops in its thinking; the other five rows answer as in test_generate_gsm8k.
LOOPING = {**SCRIPT, "rules": [{**SCRIPT["rules"][0], "loop": LOOP, "rate": RATE}, *SCRIPT["rules"][1:]]}


def backends():
    return [pytest.param(lambda s: OpenAIFake(Script.from_dict(s)), id="openai"),
            pytest.param(lambda s: LMStudioFake(Script.from_dict(s)), id="lmstudio-sdk")]


def teacher_of(fake) -> str:
    return fake.url if isinstance(fake, OpenAIFake) else f"lmstudio://{fake.host}"


def streams_of(fake) -> list[dict]:
    return fake.server.streams if isinstance(fake, OpenAIFake) else fake.streams


def summary_of(out: Path) -> dict:
    return json.loads(out.with_name(out.name.removesuffix(".jsonl") + ".summary.json").read_text())


def stream(text: str, size: int = 3) -> str | None:
    watch = RepetitionWatch()
    for i in range(0, len(text), size):
        if watch.feed(text[i : i + size]):
            return watch.found
    return watch.finish()


# --- the detector ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, says", [
    ("Some honest opening words here. " + LOOP + " " + (LOOP + " ") * 30, "repeated 7 times"),
    ("The answer is " + "hahaha" * 40, "'ha' repeated"),
])
def test_a_loop_is_found_within_a_few_repeats_however_the_stream_is_cut(text, says):
    for size in (1, 2, 7, 64):
        assert says in stream(text, size)
    with pytest.raises(quality.Reject, match="repetition_loop"):
        quality.no_repetition(text)  # the same rules after the fact


def test_the_watch_keeps_no_more_than_it_needs_on_a_long_stream():
    # Nothing streamed is scanned again: what the detector holds between pieces stays bounded.
    watch = RepetitionWatch()
    for i in range(20_000):
        watch.feed(f"word{i} ")
        watch.feed(f"{'x' * 7}{i}y" * 3)  # long runs without spaces, never a loop
    assert watch.found is None and len(watch._run) <= CHAR_SPAN and len(watch._pending) < 64


def real_texts() -> dict[str, str]:
    """Long human texts that do not loop: the fixtures' references, Dolly's and creative writing's texts,
    MBPP's solutions, the rewriting and brainstorming outputs, and Python's own documentation."""
    texts = {}
    for path in FIXTURES.glob("*/*.json*"):
        if path.parent.name == "traces":
            continue  # made-up rows, one of them a loop on purpose (test_crap_stats)
        rows = json.loads(path.read_text()) if path.suffix == ".json" else \
            [json.loads(line) for line in path.read_text().splitlines()]
        for i, row in enumerate(rows):
            for key, value in row.items():
                if isinstance(value, str) and len(value.split()) >= 20:
                    texts[f"{path.name}:{i}:{key}"] = value
    from pydoc_data.topics import topics
    texts.update({f"python docs: {k}": v for k, v in topics.items()})
    lib = Path(os.__file__).parent
    for path in sorted(lib.glob("*.py")) + sorted(lib.glob("*/*.py")):
        if path.parent.name in ("test", "idlelib", "site-packages"):
            continue  # doctest sessions and test data, not prose
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc.split()) >= 60:
                    texts[f"{path.name}:{getattr(node, 'name', '')}"] = doc
    return texts


def test_no_false_alarm_on_real_long_texts():
    texts = real_texts()
    assert len(texts) >= 1000 and sum(len(t.split()) for t in texts.values()) > 150_000
    alarms = {name: found for name, text in texts.items() if (found := stream(text, 5))}
    assert alarms == {}


def test_budgets_cut_only_when_set():
    unlimited = Watch()
    assert not any(unlimited.feed("reasoning", f"step {i} ") for i in range(5000))
    watch = Watch(Budget(reasoning=10))
    assert [watch.feed("reasoning", f"w{i} ") for i in range(12)][-1] == "too_long: thinking past 10 tokens"
    answer = Watch(Budget(answer=3))
    assert [answer.feed("answer", f"a{i} ") for i in range(4)][-1] == "too_long: answer past 3 tokens"


# --- end to end, both backends --------------------------------------------------------------------------
@pytest.mark.parametrize("make", backends())
def test_a_looping_reply_is_cancelled_on_the_wire_and_rejected_with_its_tokens(tmp_path, make):
    out = tmp_path / "gsm8k.jsonl"
    with make(LOOPING) as fake:
        result = run_script("gsm8k/generate.py", *ARGS, "--teacher", teacher_of(fake), "--out", out)
        time.sleep(0.3)
        janet = next(s for s in streams_of(fake) if "Janet" in s["prompt"])
    assert result.returncode == 0, result.stderr
    rejects = {r["id"]: r for r in read_rows(sibling(out, "rejects"))}
    loop = rejects["gsm8k/test/0"]
    assert loop["reason"].startswith("repetition_loop: ") and "in the thinking" in loop["reason"]
    assert loop["finish"] == "cancelled" and LOOP in loop["reasoning"]
    # Stopped at the 7th repeat (11 words each): about 80 tokens, not the 32,768 the server would have sent.
    assert 60 <= loop["usage"]["completion_tokens"] <= 120
    # (the fake writes by its clock whether the client reads or not, so a loaded client sees more go by; a loop
    # left to run would send 32,768)
    assert janet["sent"] < 2000 and (janet.get("client_left") or janet.get("cancelled"))
    assert len(read_rows(out)) == 3  # the other rows are untouched
    spent = summary_of(out)["spent"]
    assert spent["cancelled"]["repetition_loop"]["replies"] == 1
    assert spent["cancelled"]["repetition_loop"]["completion"] == loop["usage"]["completion_tokens"]
    assert spent["kept"]["kept"]["replies"] == 3 and spent["rejected"]["verify_failed"]["replies"] == 1
    assert "cancelled repetition_loop" in result.stderr


@pytest.mark.parametrize("reports", [None, "llama.cpp"])
def test_a_cut_reply_counts_its_prompt_where_the_server_says_it_mid_stream(tmp_path, reports):
    """A server sends its usage at the end of a reply, which a cut reply never reaches; llama.cpp, asked (its
    Server header says llama.cpp), times every token, the prompt it read and the part it had cached apart."""
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(Script.from_dict(LOOPING), reports=reports) as fake:
        result = run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out)
    assert result.returncode == 0, result.stderr
    loop = next(r for r in read_rows(sibling(out, "rejects")) if r["id"] == "gsm8k/test/0")
    kept = read_rows(out)[0]["usage"]  # a reply that ran to its end: the server's usage
    usage, spent = loop["usage"], summary_of(out)["spent"]["cancelled"]["repetition_loop"]
    assert loop["finish"] == "cancelled" and usage["completion_tokens"] > 60
    if reports is None:
        assert usage["prompt_tokens"] is None and spent["prompt"] == 0
    else:  # the fake counts a word a token: Janet's prompt, as its usage would have said
        words = sum(len(m["content"].split()) for m in loop["messages"])
        assert usage["prompt_tokens"] == words == spent["prompt"] and kept["prompt_tokens"] is not None
        assert usage["tokens_per_second"] == RATE  # the server's decode rate, not the client's wall clock


@pytest.mark.parametrize("make", backends())
def test_a_loop_is_resampled_under_attempts(tmp_path, make):
    script = {**LOOPING, "rules": [{**LOOPING["rules"][0], "loop_calls": 1}, *LOOPING["rules"][1:]]}
    out = tmp_path / "gsm8k.jsonl"
    with make(script) as fake:
        result = run_script("gsm8k/generate.py", *ARGS, "--teacher", teacher_of(fake), "--out", out, "--attempts", "2")
    assert result.returncode == 0, result.stderr
    janet = next(r for r in read_rows(out) if r["id"] == "gsm8k/test/0")
    assert janet["attempt"] == 2 and janet["verified"] is True and LOOP not in janet["reasoning"]
    summary = summary_of(out)
    assert summary["spent"]["cancelled"]["repetition_loop"]["replies"] == 1 and summary["resampled"] >= 1


@pytest.mark.parametrize("make", backends())
@pytest.mark.parametrize("flags, says, spent", [
    (["--max-reasoning-tokens", "50"], "too_long: thinking past 50 tokens", 60),
    # --budget-from: the whole row, counted in words here (an empty Hugging Face cache: no Gemma tokenizer)
    (["--budget-from", "120"], "too_long: the training row past 120 words", 299)], ids=["teacher-tokens", "row"])
def test_budgets_stop_a_long_reply_as_too_long(tmp_path, make, flags, says, spent):
    # through both backends, LM Studio through its real SDK: the request is cancelled on the wire
    long_thinking = " ".join(f"step{i}" for i in range(300))
    script = {**SCRIPT, "rules": [{**SCRIPT["rules"][0], "reasoning": long_thinking, "rate": RATE},
                                  *SCRIPT["rules"][1:]]}
    out = tmp_path / "gsm8k.jsonl"
    with make(script) as fake:
        result = run_script("gsm8k/generate.py", *ARGS, "--teacher", teacher_of(fake), "--out", out, *flags,
                            env=script_env(HF_HOME=str(tmp_path / "empty-hf")))
    assert result.returncode == 0, result.stderr
    reject = next(r for r in read_rows(sibling(out, "rejects")) if r["id"] == "gsm8k/test/0")
    assert reject["reason"].startswith(says) and reject["finish"] == "cancelled"
    assert reject["usage"]["completion_tokens"] <= spent
    assert summary_of(out)["spent"]["cancelled"]["too_long"]["replies"] == 1


def test_without_a_budget_a_long_reply_is_kept(tmp_path):
    long_thinking = " ".join(f"step{i}" for i in range(300))
    script = {**SCRIPT, "rules": [{**SCRIPT["rules"][0], "reasoning": long_thinking, "rate": 2000},
                                  *SCRIPT["rules"][1:]]}
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script) as fake:
        assert run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out).returncode == 0
    janet = next(r for r in read_rows(out) if r["id"] == "gsm8k/test/0")
    assert janet["usage"]["completion_tokens"] > 300 and janet["verified"] is True


@pytest.mark.parametrize("value, says", [("lots", "--budget-from must be a number > 0, a mix folder"),
                                         ("{}", "no max_tokens")])
def test_bad_budget_from_is_one_line(tmp_path, value, says):
    if value == "{}":
        (tmp_path / "cfg.json").write_text("{}")
        value = tmp_path / "cfg.json"
    result = run_script("gsm8k/generate.py", *ARGS, "--out", tmp_path / "o.jsonl", "--budget-from", value)
    assert says in one_line_error(result)


def test_help_states_the_defaults():
    help_text = run_script("gsm8k/generate.py", "--help").stdout
    assert "a repetition loop is always stopped" in " ".join(help_text.split())
    assert help_text.count("(default: no cut)") == 3


def test_stats_show_what_the_teacher_spent(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(LOOPING) as fake:
        assert run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out).returncode == 0
    result = run_script("crap.py", "stats", out, "--out", tmp_path / "stats.md")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "stats.md").read_text()
    rows, rejects = read_rows(out), {r["id"]: r for r in read_rows(sibling(out, "rejects"))}
    used = lambda r: r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]  # noqa: E731
    loop = rejects["gsm8k/test/0"]
    assert loop["usage"]["prompt_tokens"] is None  # the stream was cut before the server sent its usage
    cancelled, rejected = loop["usage"]["completion_tokens"], sum(used(r) for r in rejects.values() if r is not loop)
    kept = sum(used(r) for r in rows) / len(rows)
    share = 100 * (cancelled + rejected) / (cancelled + rejected + sum(used(r) for r in rows))
    assert f"| (all) | 3 | {kept:,.0f} | {rejected:,} | {cancelled:,} | {share:.1f}% |" in text
    assert f"| math | repetition_loop | 1 | {cancelled:,} |" in text
    assert "Every run, resampled replies included (its summary):" in text and "cancelled repetition_loop" in text


def test_the_card_counts_the_tokens_of_rows_the_mix_dropped(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(SCRIPT) as fake:
        assert run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out).returncode == 0
    mix, staging = tmp_path / "mix", tmp_path / "hub"
    made = run_script("crap.py", "mix", out, "--out", mix, "--no-decontam", "--quota", "math=2")
    assert made.returncode == 0, made.stderr
    pushed = run_script("crap.py", "push", mix, "--repo", "me/traces", "--staging", staging, "--dry-run")
    assert pushed.returncode == 0, pushed.stderr
    card = (staging / "README.md").read_text()
    published = [r for split in ("sft", "rl", "eval") for r in read_rows(mix / f"{split}.jsonl")]
    dropped = [r for r in read_rows(out) if r["id"] not in {p["id"] for p in published}]
    used = lambda r: r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]  # noqa: E731
    assert dropped and published
    assert f"| dropped by the mix | {len(dropped)} | {sum(map(used, dropped)):,} |" in card
    assert f"| published | {len(published)} | {sum(map(used, published)):,} |" in card
