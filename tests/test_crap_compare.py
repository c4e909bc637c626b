"""crap.py compare: two teachers (real local OpenAI-compatible servers) answer the same seeded prompts through
the recipes' own generate.py; the table, the JSON figures, the PNG, resume and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import crap
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.script import last_user_text
from tests.helpers import FIXTURES, ROOT, one_line_error, script_env

# Teacher A answers every GSM8K fixture question right; teacher B is slower and always answers 0.
RIGHT = {"Janet": "18", "robe": "3", "flipping": "70,000", "sprints": "540", "Toulouse": "260", "temperature": "-17"}
TEACHER_A = {"rules": [{"match": k, "reasoning": f"Working it out step by step gives {v}.",
                        "content": f"The answer is \\boxed{{{v}}}."} for k, v in RIGHT.items()]}
TEACHER_B = {"latency": 0.05, "default": {"reasoning": "Quick guess.", "content": "\\boxed{0}"}}
SOURCES = ["--source", f"gsm8k={FIXTURES / 'gsm8k' / 'test.jsonl'}", "--source",
           f"sciqa={FIXTURES / 'sciq' / 'train.jsonl'}"]


def compare(out, a, b, *extra, recipes=("gsm8k", "SciQA")):
    cmd = [sys.executable, str(ROOT / "crap.py"), "compare", "--teacher", a.url, "--teacher", b.url,
           *(arg for r in recipes for arg in ("--recipe", r)), *SOURCES, "--out", str(out), *map(str, extra)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=script_env(), cwd=ROOT)


def prompts(fake) -> list[str]:
    return sorted(last_user_text(body["messages"]) for body in fake.requests)


def test_bake_off_over_the_same_prompts(tmp_path):
    out = tmp_path / "compare"
    with OpenAIFake(TEACHER_A) as a, OpenAIFake(TEACHER_B) as b:
        result = compare(out, a, b, "--n", "5", "--seed", "1")
        assert result.returncode == 0, result.stderr
        assert len(a.requests) == len(b.requests) == 5  # gsm8k 3 + SciQA 2
        assert prompts(a) == prompts(b)                 # the same prompts for both
        figures = json.loads((out / "compare.json").read_text())
        assert figures["per_recipe"] == {"gsm8k": 3, "SciQA": 2} and figures["checkable"] == ["gsm8k"]
        first, second = figures["teachers"]
        assert (first["teacher"], second["teacher"]) == (a.url, b.url)
        assert first["by_recipe"]["gsm8k"] == {**first["by_recipe"]["gsm8k"], "rows": 3, "verified": 1.0}
        assert second["by_recipe"]["gsm8k"] == {**second["by_recipe"]["gsm8k"], "rows": 0, "rejects": 3,
                                                "verified": 0.0}
        assert first["verified_share"] == 1.0 and second["verified_share"] == 0.0
        assert second["reject_reasons"]["verify_failed"] == 3
        # teacher A's kept rows: "Working it out step by step gives N." is 8 words
        assert first["reasoning_mean"] == 8.0 and first["answer_median"] == 4.0
        assert first["tokens_per_second_median"] > 0 and second["wall_seconds"] > 0
        rows = [json.loads(line) for line in (out / first["label"] / "gsm8k.jsonl").read_text().splitlines()]
        assert sorted(r["id"] for r in rows) == figures["prompts"]["gsm8k"]
        table = (out / "compare.md").read_text()
        assert result.stdout.strip() == table.strip()
        assert f"| {a.url} | qwen3-14b | " in table and "| 100.0% |" in table and "verify_failed 3" in table
        assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
        # the same command again resumes: nothing is sent twice, the figures stay
        again = compare(out, a, b, "--n", "5", "--seed", "1")
        assert again.returncode == 0, again.stderr
        assert len(a.requests) == len(b.requests) == 5
        assert json.loads((out / "compare.json").read_text())["prompts"] == figures["prompts"]

    # the engine's own trace files go through the other commands (SciQA kept nothing: only its rejects exist)
    folder = out / first["label"]
    assert crap.main(["stats", str(folder), "--out", str(tmp_path / "stats.md")]) == 0
    assert "| science | 0 | - | - | - | 2 | 0.0% |" in (tmp_path / "stats.md").read_text()
    assert crap.main(["mix", str(folder), "--out", str(tmp_path / "mix"), "--no-decontam", "--eval-share", "0"]) == 0
    assert crap.main(["push", str(tmp_path / "mix"), "--repo", "me/bake", "--dry-run",
                      "--staging", str(tmp_path / "hub")]) == 0
    assert sorted(p.name for p in (tmp_path / "hub" / "data").iterdir()) == ["rl.jsonl", "sft.jsonl"]  # JSONL by default


def test_another_seed_draws_other_prompts(tmp_path):
    # (the same seed drawing the same prompts is the resume check above: nothing was sent twice)
    drawn = {}
    with OpenAIFake(TEACHER_A) as a, OpenAIFake(TEACHER_B) as b:
        for seed in (1, 3):
            out = tmp_path / f"seed{seed}"
            assert compare(out, a, b, "--n", "3", "--seed", seed, recipes=["gsm8k"]).returncode == 0
            drawn[seed] = json.loads((out / "compare.json").read_text())["prompts"]["gsm8k"]
            assert len(drawn[seed]) == 3
        assert prompts(a) == prompts(b)
    assert drawn[1] != drawn[3]


def test_compare_bad_input(tmp_path, capsys):
    with OpenAIFake(TEACHER_A) as a, OpenAIFake(TEACHER_B) as b:
        def error(*args):  # in-process: these fail before any subprocess starts
            capsys.readouterr()
            assert crap.main(["compare", "--out", str(tmp_path / "c"), *map(str, args)]) == 2
            return capsys.readouterr().err

        assert "at least two --teacher" in error("--teacher", a.url)
        assert "--recipe must be one of" in error("--teacher", a.url, "--teacher", b.url, "--recipe", "gsm9k")
        assert "one --model for all teachers or one per --teacher" in error(
            "--teacher", a.url, "--teacher", b.url, "--model", "x", "--model", "y", "--model", "z")
        assert "--source must be RECIPE=VALUE" in error("--teacher", a.url, "--teacher", b.url, "--source", "x.jsonl")
        assert "--n must be at least 1" in error("--teacher", a.url, "--teacher", b.url, "--n", "0")

        def run(*args):  # as users run it
            cmd = [sys.executable, str(ROOT / "crap.py"), "compare", "--out", str(tmp_path / "c"), *map(str, args)]
            return one_line_error(subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                                                 env=script_env(), cwd=ROOT))

        # a recipe's input is checked (dry run, no calls) before any teacher is asked anything
        message = run("--teacher", a.url, "--teacher", b.url, "--recipe", "gsm8k", "--source", "gsm8k=missing.jsonl")
        assert "gsm8k/generate.py: source file not found: missing.jsonl" in message
        assert "cannot reach the teacher" in run("--teacher", "http://127.0.0.1:9/v1", "--teacher", b.url,
                                                 "--recipe", "gsm8k", *SOURCES[:2], "--n", "1")
        assert a.requests == [] and b.requests == []


def test_the_report_counts_the_prompts_each_teacher_got_not_the_ones_asked(tmp_path):
    out = tmp_path / "compare"
    with OpenAIFake(TEACHER_A) as a, OpenAIFake(TEACHER_B) as b:
        result = compare(out, a, b, "--n", "10", recipes=("gsm8k",))  # the fixture has 6 questions
        assert result.returncode == 0, result.stderr
        assert len(a.requests) == len(b.requests) == 6
    figures = json.loads((out / "compare.json").read_text())
    assert figures["n"] == 6 and figures["asked"] == 10 and figures["per_recipe"] == {"gsm8k": 6}
    report = (out / "compare.md").read_text()
    assert "The same 6 prompts (10 asked; the sources had no more) (seed 0: gsm8k 6)" in report
