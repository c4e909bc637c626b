"""A newcomer's walk through the README: its commands, in its order, into one data/ (a real local teacher server,
the fixtures as --source), then `crap.py stats data/*` and `crap.py mix data/*` over whatever they left there."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import FIXTURES, ROOT, script_env

RIGHT = {"Janet": "18", "robe": "3", "flipping": "70,000", "sprints": "540", "Toulouse": "260", "temperature": "-17"}
TEACHER = {"rules": [{"match": k, "reasoning": f"Working it out step by step gives {v}.",
                      "content": f"The answer is \\boxed{{{v}}}."} for k, v in RIGHT.items()],
           "default": {"reasoning": "Reading the question and the passage carefully first.",
                       "content": "The answer is A."}}
GSM8K, SCIQ, DOLLY = FIXTURES / "gsm8k" / "test.jsonl", FIXTURES / "sciq" / "train.jsonl", \
    FIXTURES / "dolly" / "databricks-dolly-15k.jsonl"
EVAL_SETS = [arg for key, name in (("gsm8k-test", "gsm8k_test"), ("mbpp-test", "mbpp_test"),
                                   ("sciq-validation", "sciq_validation"), ("sciq-test", "sciq_test"))
             for arg in ("--eval-set", f"{key}={FIXTURES / 'traces' / 'evalsets' / name}.jsonl")]


def run(cwd, script, *args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                            timeout=300, env=script_env(), cwd=cwd)
    assert result.returncode == 0, (script, args, result.stderr)
    return result


def test_the_readme_commands_in_order_leave_a_data_folder_that_stats_and_mix_read_whole(tmp_path):
    with OpenAIFake(TEACHER) as teacher, OpenAIFake(TEACHER) as other:
        t = ["--teacher", teacher.url]
        run(tmp_path, "gsm8k/generate.py", "--split", "test", "--limit", 100, *t, "--source", GSM8K)
        run(tmp_path, "SciQA/generate.py", "--split", "validation", "--limit", 100, *t, "--source", SCIQ)
        run(tmp_path, "Databricks/generate_databricks.py", "--category", "closed_qa,classification", *t,
            "--source", DOLLY)
        run(tmp_path, "Databricks/analyze_databricks.py", "--source", DOLLY)
        run(tmp_path, "crap.py", "stats")
        run(tmp_path, "crap.py", "mix", "--out", "data/mix", "--seed", 0, *EVAL_SETS)
        run(tmp_path, "crap.py", "push", "data/mix", "--repo", "someone/traces", "--dry-run")
        run(tmp_path, "crap.py", "view")
        run(tmp_path, "crap.py", "compare", "--teacher", teacher.url, "--teacher", other.url, "--n", 4,
            "--recipe", "gsm8k", "--source", f"gsm8k={GSM8K}")
        run(tmp_path, "crap.py", "convert", FIXTURES / "traces" / "csv" / "brainstorming-thinking.csv")
    data = tmp_path / "data"
    left = {p.name for p in data.iterdir()}
    # what the commands left beside the trace files: the glob below brings in every one of them
    assert {"stats.md", "dolly_analysis.md", "dolly_analysis.png", "mix", "hub", "compare", "view.html",
            "gsm8k.summary.json"} <= left, left
    glob = sorted(str(p.relative_to(tmp_path)) for p in data.iterdir())

    stats = run(tmp_path, "crap.py", "stats", *glob)
    for name in ("gsm8k.jsonl", "sciq.jsonl", "dolly.jsonl", "brainstorming-thinking.jsonl"):
        assert name in stats.stdout, (name, stats.stdout)
    skipped = [line for line in stats.stderr.splitlines() if line.startswith("skipped ")]
    assert {line.split(":")[0] for line in skipped} >= {"skipped data/stats.md", "skipped data/dolly_analysis.md",
                                                          "skipped data/mix", "skipped data/hub",
                                                          "skipped data/compare", "skipped data/view.html"}, stats.stderr
    assert "skipped data/mix: a training mix" in stats.stderr  # each says what it is, one line each

    run(tmp_path, "crap.py", "mix", *glob, "--out", "data/mix2", "--no-decontam")
    mix = json.loads((data / "mix2" / "mix.json").read_text())
    assert sorted(name_of(i["path"]) for i in mix["inputs"]) == sorted(
        ["brainstorming-thinking.jsonl", "dolly.jsonl", "gsm8k.jsonl", "sciq.jsonl"])
    assert sum(o["rows"] for o in mix["outputs"].values()) > 0


def name_of(path: str) -> str:
    return path.rsplit("/", 1)[-1]
