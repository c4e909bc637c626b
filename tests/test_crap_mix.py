"""crap.py mix: filtering stages, decontamination against the evaluation sets, quotas, the seeded split,
reproducibility and bad input."""

from __future__ import annotations

import json
import random

import pytest

import crap
from tests.helpers import FIXTURES, one_line_error, read_rows, run_script
from tests.test_crap_stats import train_tokenizer
from tunixhack.dataset.decontam import EVAL_SETS
from tunixhack.errors import UserError
from tunixhack.dataset.mix import MixRecipe, build_mix
from tunixhack.tokens import WordCounter, token_counter

TRACES = FIXTURES / "traces"
EVAL_FILES = {
    "gsm8k-test": TRACES / "evalsets" / "gsm8k_test.jsonl",
    "mbpp-test": TRACES / "evalsets" / "mbpp_test.jsonl",
    "sciq-validation": TRACES / "evalsets" / "sciq_validation.jsonl",
    "sciq-test": TRACES / "evalsets" / "sciq_test.jsonl",
}
EVAL_ARGS = [a for key, path in EVAL_FILES.items() for a in ("--eval-set", f"{key}={path}")]
INPUTS = [TRACES / f"{name}.jsonl" for name in ("databricks", "gsm8k", "sciq")]


def mix(out, *extra):
    return run_script("crap.py", "mix", TRACES, "--out", out, *EVAL_ARGS, *extra)


def trace_row(i: int, category: str, prompt: str, **fields) -> dict:
    return {"id": f"t/train/{i}", "dataset": "test/data", "category": category, "prompt": prompt,
            "reasoning": "some reasoning", "answer": "an answer", "verified": True, "fingerprint": "f", **fields}


VOCAB = ("apple river stone cloud engine violin garden ladder candle mirror planet basket silver thunder "
         "meadow pencil harbor lantern copper orchard falcon glacier velvet compass marble tunnel").split()


def varied(i: int) -> str:
    """A prompt unlike the others (random words), so deduplication leaves it alone."""
    return " ".join(random.Random(i).sample(VOCAB, 10)) + f" number {i}?"


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mix_stages_outputs_and_report(tmp_path):
    out = tmp_path / "mix"
    result = mix(out, "--seed", "3", "--max-tokens", "400", "--eval-share", "0.25")
    assert result.returncode == 0, result.stderr
    removed = {r["id"]: r for r in read_rows(out / "removed.jsonl")}
    assert {k: r["stage"] for k, r in removed.items()} == {
        "gsm8k/train/3": "failed_verification",
        "gsm8k/train/4": "duplicate",            # row 0 again, up to case and punctuation
        "gsm8k/train/5": "near_duplicate",       # row 1 with one word added
        "gsm8k/train/2": "contaminated",         # the first GSM8K test question
        "databricks/train/3": "too_long",
    }
    assert removed["gsm8k/train/4"]["detail"] == {"duplicate_of": "gsm8k/train/0"}
    assert removed["gsm8k/train/5"]["detail"]["duplicate_of"] == "gsm8k/train/1"
    leak = removed["gsm8k/train/2"]["detail"]
    assert leak["eval_set"] == "gsm8k-test" and leak["eval_row"] == 0 and leak["field"] == "prompt"
    assert len(leak["ngram"].split()) == 13 and "ducks lay 16 eggs" in leak["ngram"]
    assert removed["databricks/train/3"]["detail"]["unit"] == "words"
    assert removed["databricks/train/3"]["detail"]["length"] > 400

    splits = {name: read_rows(out / f"{name}.jsonl") for name in ("sft", "rl", "eval")}
    ids = [r["id"] for rows in splits.values() for r in rows]
    assert len(ids) == len(set(ids)) == 12  # 17 in, 5 removed, nothing else lost
    assert not set(ids) & set(removed)
    assert all(r["verified"] is not False for rows in splits.values() for r in rows)
    summary = json.loads((out / "mix.json").read_text())
    assert summary["recipe"]["seed"] == 3 and summary["recipe"]["max_tokens"] == 400
    assert summary["counts"]["math"] == {"input": 8, "failed_verification": 1, "duplicate": 1, "near_duplicate": 1,
                                         "contaminated": 1, "available": 4, "eval": 1, "sft": 1, "rl": 2}
    assert summary["decontamination"]["eval_sets"]["gsm8k-test"]["rows_removed"] == 1
    assert summary["decontamination"]["eval_sets"]["sciq-test"]["rows_removed"] == 0
    assert [i["path"] for i in summary["inputs"]] == [str(p) for p in INPUTS]
    assert all(len(i["sha256"]) == 64 for i in summary["inputs"])
    assert summary["inputs"][1]["fingerprints"] == {"a1b2c3d4e5f60718": 8}
    for name, rows in splits.items():
        assert summary["outputs"][name]["rows"] == len(rows)
    assert "contaminated 1" in result.stdout
    header, *table = result.stdout.split("\n\n")[0].splitlines()
    assert header.split() == ["category", "input", "failed_verification", "duplicate", "near_duplicate",
                              "contaminated", "too_long", "available", "sft", "rl", "eval"]  # whole names
    assert "math 8 1 1 1 1 0 4 1 2 1" in [" ".join(line.split()) for line in table]


def test_same_seed_same_mix_and_another_seed_another(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert mix(first, "--seed", "7", "--eval-share", "0.25").returncode == 0
    assert mix(second, "--seed", "7", "--eval-share", "0.25").returncode == 0
    for name in ("sft.jsonl", "rl.jsonl", "eval.jsonl", "removed.jsonl", "mix.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # in-process, over more rows: another seed draws another split
    rows = [trace_row(i, "math", varied(i)) for i in range(40)]
    source = write_rows(tmp_path / "many.jsonl", rows)
    picks = set()
    for seed in (1, 2):
        recipe = MixRecipe(seed=seed, decontaminate=False)
        build_mix([source], recipe, WordCounter(), {}, tmp_path / f"seed{seed}")
        picks.add(tuple(r["id"] for r in read_rows(tmp_path / f"seed{seed}" / "sft.jsonl")))
    assert len(picks) == 2


def test_quotas_and_shares(tmp_path):
    rows = [trace_row(i, "math", varied(i)) for i in range(100)]
    rows += [trace_row(100 + i, "open_qa", varied(100 + i), verified=None) for i in range(30)]
    source = write_rows(tmp_path / "t.jsonl", rows)
    summary = build_mix([source], MixRecipe(seed=0, quotas={"open_qa": 10}, decontaminate=False), WordCounter(),
                        {}, tmp_path / "mix")
    # math: all 100 rows; 5% eval = 5, then 20% of 95 for SFT = 19, the rest (76) for RL
    assert {k: summary["counts"]["math"][k] for k in ("eval", "sft", "rl")} == {"eval": 5, "sft": 19, "rl": 76}
    # open_qa: unverifiable rows stay; the quota draws 10 of 30
    assert {k: summary["counts"]["open_qa"][k] for k in ("available", "eval", "sft", "rl")} == \
        {"available": 30, "eval": 0, "sft": 2, "rl": 8}
    sft = read_rows(tmp_path / "mix" / "sft.jsonl")
    assert sum(r["category"] == "open_qa" for r in sft) == 2
    assert {r["verified"] for r in sft} == {True, None}


def test_config_file_and_flags_over_it(tmp_path):
    config = tmp_path / "mix.toml"
    config.write_text('seed = 5\nsft_share = 0.5\n[quotas]\nscience = 2\nmath = 1\n')
    out = tmp_path / "mix"
    result = mix(out, "--config", config, "--quota", "math=3", "--eval-share", "0")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "mix.json").read_text())
    assert summary["recipe"]["seed"] == 5 and summary["recipe"]["quotas"] == {"science": 2, "math": 3}
    science, math = summary["counts"]["science"], summary["counts"]["math"]
    assert science["sft"] + science["rl"] == 2 and science["sft"] == 1
    assert math["sft"] + math["rl"] == 3
    bad = tmp_path / "bad.json"
    bad.write_text('{"seed": 1, "quota": {"math": 1}}')
    assert "unknown key quota" in one_line_error(mix(tmp_path / "x", "--config", bad))


def test_length_budgets_are_the_trainers(tmp_path):
    """A row the mix keeps is one the SFT trainer keeps with --max-len equal to --max-tokens, and one GRPO keeps
    with --max-prompt-len equal to --max-prompt-tokens; and no other."""
    from tunixhack.train.data import grpo_prompts, tokenize_sft

    sp = train_tokenizer(tmp_path / "tokenizer.model")
    ids = {"pad": 0, "bos": 1, "end_of_turn": 2}

    def shortest(accepts) -> int:  # the smallest budget a trainer accepts the row with (binary search)
        low, high = 1, 1 << 16
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if accepts(middle) else (middle + 1, high)
        return low

    rows = [r for path in INPUTS for r in read_rows(path) if r["verified"] is not False]
    whole = {r["id"]: shortest(lambda n: tokenize_sft([r], sp, ids, n).counts["kept"]) for r in rows}
    prompt = {r["id"]: shortest(lambda n: grpo_prompts([r], sp, n).counts["kept"]) for r in rows}
    for lengths, flags, key in ((whole, ["--max-prompt-tokens", 1 << 16], "length"),
                                (prompt, ["--max-tokens", 1 << 16], "prompt_length")):
        budget = sorted(lengths.values())[len(lengths) // 2]  # about half the rows fit
        out = tmp_path / key
        flag = "--max-tokens" if key == "length" else "--max-prompt-tokens"
        result = mix(out, "--tokenizer", tmp_path / "tokenizer.model", flag, budget, *flags)
        assert result.returncode == 0, result.stderr
        too_long = {r["id"]: r["detail"] for r in read_rows(out / "removed.jsonl") if r["stage"] == "too_long"}
        kept = [r for name in ("sft", "rl", "eval") for r in read_rows(out / f"{name}.jsonl")]
        assert kept and all(lengths[r["id"]] <= budget for r in kept)
        assert too_long and all(d[key] == lengths[i] > budget for i, d in too_long.items())
        assert all(d["unit"] == f"tokens ({tmp_path / 'tokenizer.model'})" for d in too_long.values())


def test_decontamination_of_mbpp_and_sciq_and_the_ngram_boundary(tmp_path):
    gsm8k_question = json.loads(EVAL_FILES["gsm8k-test"].read_text().splitlines()[1])["question"]
    words = gsm8k_question.split()
    rows = [
        trace_row(0, "code", "Write a python function to remove first and last occurrence of a given character "
                             "from the string. Your code should pass: assert remove_Occ('hello','l') == 'heo'"),
        # a SciQ test question of 12 words: shorter than 13, so it is matched whole
        trace_row(1, "science", "Question: What term in biotechnology means a genetically exact copy of an organism?"),
        trace_row(2, "math", " ".join(words[:12]) + " and then something else entirely"),  # 12 shared words: kept
        trace_row(3, "math", "Unrelated", answer=" ".join(words[5:18])),                   # 13 in the answer
        trace_row(4, "science", "What is a copy?"),                                       # too short to mean a leak
    ]
    source = write_rows(tmp_path / "t.jsonl", rows)
    summary = build_mix([source], MixRecipe(eval_share=0), WordCounter(), {k: str(v) for k, v in EVAL_FILES.items()},
                        tmp_path / "mix")
    removed = {r["id"]: r["detail"] for r in read_rows(tmp_path / "mix" / "removed.jsonl")}
    assert removed["t/train/0"]["eval_set"] == "mbpp-test"
    assert removed["t/train/1"]["eval_set"] == "sciq-test"
    assert removed["t/train/3"] == {**removed["t/train/3"], "eval_set": "gsm8k-test", "field": "answer"}
    assert set(removed) == {"t/train/0", "t/train/1", "t/train/3"}
    assert summary["decontamination"]["eval_sets"]["mbpp-test"]["columns"] == ["text", "code"]


def crap_error(capsys, *args) -> str:
    """crap.py's main in-process (fast): exit code 2 and one line on stderr."""
    capsys.readouterr()
    assert crap.main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_mix_bad_input(tmp_path, capsys):
    # as users run it: a subprocess, one line, exit 2, nothing written
    assert "the mix is empty after filtering: 17 rows in, none left" in one_line_error(
        mix(tmp_path / "m1", "--max-tokens", "1"))
    assert not (tmp_path / "m1" / "mix.json").exists()

    def error(*args):
        return crap_error(capsys, "mix", TRACES, "--out", tmp_path / "m2", *args)

    assert "quota for unknown category maths" in error("--quota", "maths=3", "--no-decontam")
    assert "--quota must be CATEGORY=N" in error("--quota", "math")
    assert "--eval-set must be KEY=PATH with KEY in gsm8k-test|" in error("--eval-set", "gsm8k=x.jsonl")
    assert "sft_share must be between 0 and 1" in error("--sft-share", "1.5")
    # an evaluation file that is not in its dataset's schema
    message = error("--eval-set", f"gsm8k-test={EVAL_FILES['mbpp-test']}", *EVAL_ARGS[2:])
    assert "evaluation set gsm8k-test" in message and "lacks column question" in message
    # offline (tests/helpers sets HF_HUB_OFFLINE for subprocesses) and no local copy: say how to go on
    result = run_script("crap.py", "mix", TRACES, "--out", tmp_path / "m5", *EVAL_ARGS[:2])
    assert "--eval-set mbpp-test=PATH" in one_line_error(result) and "--no-decontam" in result.stderr
    assert "trace file not found: missing.jsonl" in crap_error(
        capsys, "mix", "missing.jsonl", "--out", tmp_path / "m6", "--no-decontam")
    assert "not a trace row" in crap_error(
        capsys, "mix", TRACES / "bad" / "not_traces.jsonl", "--out", tmp_path / "m7", "--no-decontam")
    assert not any(p.exists() for p in (tmp_path / "m2", tmp_path / "m5", tmp_path / "m6", tmp_path / "m7"))


def test_an_existing_mix_is_not_overwritten(tmp_path):
    out = tmp_path / "mix"
    assert mix(out, "--no-decontam").returncode == 0
    before = (out / "sft.jsonl").read_bytes()
    assert "already holds a mix" in one_line_error(mix(out, "--no-decontam", "--seed", "9"))
    assert (out / "sft.jsonl").read_bytes() == before
    assert mix(out, "--no-decontam", "--seed", "9", "--overwrite").returncode == 0
    assert json.loads((out / "mix.json").read_text())["decontamination"] == {"enabled": False}


def test_every_evaluation_set_has_a_hub_source():
    # the user's path: load_dataset(id, config, split); the ids and splits named in the issue
    assert {(s.dataset, s.split) for s in EVAL_SETS.values()} == {
        ("openai/gsm8k", "test"), ("google-research-datasets/mbpp", "test"),
        ("allenai/sciq", "validation"), ("allenai/sciq", "test")}
    with pytest.raises(UserError, match="--tokenizer not found"):
        token_counter("/nonexistent/tokenizer.model")


def test_without_tokenizer_the_budget_counts_gemma_tokens_from_the_cache_as_sft_does(tmp_path):
    """No --tokenizer: the student's tokenizer.model in the Hugging Face cache (where train/ finds Gemma3-1B-it)
    counts the budget, so a row of few words but many tokens is cut, as SFT's --max-len would; with an empty
    cache, words, and a note that says so."""
    from tests.helpers import script_env

    snapshot = tmp_path / "hf" / "hub" / "models--google--gemma-3-1b-it" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    sp = train_tokenizer(snapshot / "tokenizer.model")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    from tunixhack.dataset.mix import length_filter
    from tunixhack.tokens import SentencePieceCounter

    rows = [trace_row(i, "math", varied(i)) for i in range(6)]
    rows[0]["answer"] = " ".join(["Antidisestablishmentarianism Floccinaucinihilipilification"] * 10)
    inputs = write_rows(tmp_path / "t.jsonl", rows)

    def length(row, counter) -> int:
        return length_filter([row], 0, 1 << 16, counter)[1][0]["detail"]["length"]

    counter = SentencePieceCounter(snapshot / "tokenizer.model", "gemma")
    budget = max(length(r, counter) for r in rows[1:])  # rows 1-5 fit in tokens (and in words)
    assert length(rows[0], counter) > budget >= length(rows[0], WordCounter())  # row 0 fits in words only

    def run(cache, out):
        return run_script("crap.py", "mix", inputs, "--out", out, "--no-decontam", "--max-tokens", budget,
                          env=script_env(HF_HOME=str(cache)))

    tokens, words = run(tmp_path / "hf", tmp_path / "tokens"), run(tmp_path / "empty", tmp_path / "words")
    assert tokens.returncode == 0 and words.returncode == 0, tokens.stderr + words.stderr
    cut = [r["id"] for r in read_rows(tmp_path / "tokens" / "removed.jsonl")]
    assert cut == ["t/train/0"] and not read_rows(tmp_path / "words" / "removed.jsonl")
    unit = json.loads((tmp_path / "tokens" / "mix.json").read_text())["length_unit"]
    assert unit == "tokens (google/gemma-3-1b-it, from the Hugging Face cache)" and "note:" not in tokens.stderr
    assert json.loads((tmp_path / "words" / "mix.json").read_text())["length_unit"] == "words"
    assert "note: lengths in words, not the student's tokens" in words.stderr
