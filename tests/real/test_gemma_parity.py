"""Our Gemma 3 against llama.cpp, an implementation we did not write (issue 17, "Checked against llama.cpp").

The real google/gemma-3-270m (the [dev] extra's Q4_K_M GGUF) is read as `--model FILE.gguf` reads it
(gguf_in.convert: float32 weights, tokenizer rebuilt from the GGUF vocabulary), then:
- Tokenizer: several hundred strings (tests/real/parity_texts.py) encode to the same ids with our rebuilt
  SentencePiece model as with llama.cpp's /tokenize on the original GGUF. Neither side adds BOS here
  (`encode` / add_special false); control pieces written as text (<start_of_turn>) are one piece on both sides
  (parse_special true). Where BOS is added, both add exactly one id 2 in front: Tunix's sampler, and llama.cpp
  when add_special is true.
- Logits: the same dequantized weights written as an F32 GGUF by our exporter (gguf_out.write, what
  `export.py --gguf f32` calls) and served by llama-server with a float32 KV cache, against Tunix's Gemma 3 in
  float32 through Tunix's own sampler. Both get the same prompt ids, BOS included (llama.cpp takes a token
  array as it is). A quarter of the prompts are longer than the 512-token sliding window.
CPU only; the figures are printed (pytest -s). The time and the figures measured here are in the docstrings of
the tests below.
"""

from __future__ import annotations

import pytest

from tests.helpers import HEAVY_MODULE_TIMEOUT_S
from tests.real import parity_texts
from tests.real.greedy import (F32_KV_CACHE, PARITY_CONTEXT, PARITY_SLOTS, WINDOW, llama_ids, max_logprob_diff,
                               parity_figures, parity_rows, round_trip, write_f32_gguf)

pytestmark = [pytest.mark.train, pytest.mark.timeout(HEAVY_MODULE_TIMEOUT_S)]

NEW_TOKENS = 24          # greedy continuation compared token by token
# At least 50 prompts (issue 17), a quarter of them past the sliding window (531-579 tokens)
SHORT_PROMPTS, LONG_PROMPTS = 38, 13
LONG_BATCH = 2           # Tunix's batches: all the short prompts in one, the long ones (prefill-bound) in twos
LOGPROB_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def gemma(gemma_270m_gguf, tmp_path_factory):
    """(Source, tokenizer) of the 270M read as `--model FILE.gguf` reads it, in this module's own folder."""
    from tunixhack.train import gguf_in
    from tunixhack.train import model as models

    folder = tmp_path_factory.mktemp("gemma-3-270m") / "hf"
    gguf_in.convert(str(gemma_270m_gguf), str(folder))
    source = models.resolve(str(folder))
    return source, models.load_tokenizer(source)


# --- the tokenizer ------------------------------------------------------------------------------------------
def test_the_rebuilt_tokenizer_encodes_every_string_as_llama_cpp_does(gemma, llama_server):
    _, tok = gemma
    strings = parity_texts.tokenizer_strings()
    assert sum(map(len, strings.values())) >= 300 and all(len(group) >= 30 for group in strings.values())
    pairs = [(kind, text, tok.encode(text), llama_ids(llama_server, text)) for kind, group in strings.items()
             for text in group]
    differ = [pair for pair in pairs if pair[2] != pair[3]]
    assert not differ, f"{len(differ)} strings differ, e.g. {differ[:3]}"
    # our tags are no pieces of their own: they split, and merge with the punctuation beside them
    assert len(tok.encode("<reasoning>")) > 1 and tok.encode(".<answer>")[0] != tok.encode(".")[0]
    for text in strings["chat"][:3] + strings["unicode"][:3]:
        assert tok.decode(tok.encode(text)) == text


def test_both_sides_add_the_same_one_bos(gemma, llama_server):
    from tunix.generate import tokenizer_adapter

    _, tok = gemma
    text = "<start_of_turn>user\nWhat is 2 + 2?<end_of_turn>\n"
    theirs = llama_ids(llama_server, text, add_special=True)
    adapter = tokenizer_adapter.TokenizerAdapter(tok)
    ours = [adapter.bos_id()] + adapter.encode(text)  # what Tunix's Sampler.tokenize builds
    assert theirs == ours and theirs[0] == 2 and theirs[1] == 105 and theirs.count(2) == 1


# --- the logits ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def f32_server(gemma, llama_server_factory, tmp_path_factory):
    """llama-server on the F32 GGUF our exporter writes from the dequantized weights (float32 KV cache)."""
    source, tok = gemma
    path = write_f32_gguf(source, tok, tmp_path_factory.mktemp("gguf") / "gemma-3-270m-f32.gguf")
    return llama_server_factory(path, parallel=PARITY_SLOTS, context=PARITY_CONTEXT, extra=F32_KV_CACHE)


@pytest.fixture(scope="module")
def compared(gemma, f32_server):
    """One row per prompt: its length, and both sides' greedy tokens and log-probabilities."""
    source, tok = gemma
    rows, seconds = parity_rows(source, tok, f32_server, parity_texts.short_prompts(SHORT_PROMPTS),
                                parity_texts.long_prompts(tok, LONG_PROMPTS, step=4), NEW_TOKENS, LONG_BATCH)
    print(f"\nparity (float32): {parity_figures(rows, NEW_TOKENS)}; llama.cpp {seconds['llama_cpp']:.0f} s, "
          f"Tunix {seconds['tunix']:.0f} s (loading and compiling included)")
    return rows


def test_a_quarter_of_the_prompts_are_past_the_sliding_window(compared):
    long = [r for r in compared if r["length"] > WINDOW]
    assert len(compared) == SHORT_PROMPTS + LONG_PROMPTS and len(long) >= len(compared) / 4


def test_the_next_token_agrees_on_every_prompt(compared):
    differ = [(r["length"], r["ours"][:1], r["theirs"][:1]) for r in compared if r["agree"] == 0]
    assert not differ, f"top-1 differs on {len(differ)} of {len(compared)} prompts: {differ[:5]}"


def test_log_probabilities_agree_within_tolerance(compared):
    """Each greedy token's log-probability, over the whole vocabulary, while both sides chose the same tokens."""
    worst = max(max_logprob_diff(compared, False), max_logprob_diff(compared, True))
    assert worst <= LOGPROB_TOLERANCE, worst


def test_greedy_continuations_are_identical_on_95_percent(compared):
    same = sum(r["theirs"] == r["ours"] for r in compared)
    assert same >= 0.95 * len(compared), f"{same}/{len(compared)}"


# --- the round trip: our export, served by llama.cpp -------------------------------------------------------
ROUND_TRIP_PROMPTS, ROUND_TRIP_TOKENS = 20, 16


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """`train/export.py --model tiny --gguf f16` as a user runs it: hf/ and gguf/ of the tiny model."""
    from tests.helpers import run_script, script_env

    work = tmp_path_factory.mktemp("tiny-export")
    result = run_script("train/export.py", "--model", "tiny", "--out", work / "export", "--gguf", "f16",
                        timeout=600, env=script_env(TUNIXHACK_CACHE=str(work / "cache"), JAX_PLATFORMS="cpu"))
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "export"


def test_the_tiny_models_f16_gguf_continues_on_llama_cpp_as_tunix_does(tiny_export, llama_server_factory):
    """Tunix on the model (hf/, float32) against llama.cpp on what export wrote for LM Studio (f16 matrices)."""
    from tunixhack.train import model as models

    result = round_trip(tiny_export, llama_server_factory, parity_texts.short_prompts(ROUND_TRIP_PROMPTS),
                        ROUND_TRIP_TOKENS)
    same, compared = result["same"], sum(map(len, result["theirs"]))
    print(f"\nround trip (tiny, f16 GGUF): the first {ROUND_TRIP_TOKENS} greedy tokens agree on {sum(same)}/"
          f"{len(same)} prompts of {min(result['lengths'])}-{max(result['lengths'])} tokens (window "
          f"{models.TINY['sliding_window']}), {compared} tokens compared")
    assert compared >= len(same) * ROUND_TRIP_TOKENS / 2  # continuations, not replies ended at once
    assert sum(same) >= 0.9 * len(same), [(t, o) for t, o, s in zip(result["theirs"], result["ours"], same)
                                          if not s][:3]
