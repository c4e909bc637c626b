"""Greedy decoding on both sides, Tunix (float32, its own Sampler) and llama.cpp (/completion), token by token:
what the parity tests (test_gemma_parity.py) and the real-model tier's round trip (test_gemma_train.py) compare.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# llama.cpp's end-of-generation tokens for Gemma's vocabulary (<eos>, <end_of_turn>, and "</s>", which it
# promotes to control); Tunix stops on the same ones
STOP_IDS = (1, 106, 212)
# llama.cpp decodes prompts sent together side by side, in one batch whose make-up depends on when each arrived,
# and a batch of another size sums in another order: a near-tie between two tokens then tipped one way or the other
# from run to run (one continuation in 51, sometimes). With one slot it decodes one prompt at a time, and every
# run gives the same tokens.
PARITY_SLOTS = 1
PARITY_CONTEXT = 1024  # the slot's: the longest prompt (579 tokens) and its continuation
# The requests wait in llama.cpp's queue, one reply after another (seconds each quiet, far longer beside a CI run):
# a parity test waits as long as it takes, it does not time the server.
GREEDY_TIMEOUT_S = 1200.0


def llama_ids(server, text: str, add_special: bool = False) -> list[int]:
    return server.post("/tokenize", {"content": text, "add_special": add_special, "parse_special": True})["tokens"]


def until_stop(ids: list[int], stop=STOP_IDS) -> list[int]:
    """The ids up to and including the first end-of-generation token."""
    for i, token in enumerate(ids):
        if token in stop:
            return ids[: i + 1]
    return ids


def llama_greedy(server, ids: list[int], new_tokens: int) -> tuple[list[int], list[float]]:
    """llama.cpp's greedy continuation of `ids` and the log-probability of each token (before any sampler)."""
    reply = server.post("/completion", {"prompt": ids, "n_predict": new_tokens, "temperature": 0, "n_probs": 1,
                                        "post_sampling_probs": False, "cache_prompt": False}, timeout=GREEDY_TIMEOUT_S)
    assert reply["tokens_evaluated"] == len(ids), reply["tokens_evaluated"]  # a token array gets no extra BOS
    steps = reply["completion_probabilities"]
    return [s["id"] for s in steps], [s["logprob"] for s in steps]


def tunix_greedy(source, tok, groups: list[tuple[list[str], int, int]], new_tokens: int, stop=STOP_IDS,
                 dtype: str = "float32"):
    """Tunix's greedy continuation (its own Sampler) of each prompt: [(ids, log-probabilities)].

    groups: (prompts, batch, padded prompt length); one compiled program per group. dtype: the weights'; the
    logits are float32 in either (train/eval.py's Float32Head), so bfloat16's ties do not decide the argmax."""
    from tunix.generate import sampler

    from tunixhack.train import loss
    from tunixhack.train import model as models

    net, cfg = models.load_base(source, models.make_mesh(None), dtype)
    loss.float32_logits(net)
    longest = max(length for _, _, length in groups)
    cache = sampler.CacheConfig(cache_size=longest + new_tokens, num_layers=cfg.num_layers,
                                num_kv_heads=cfg.num_kv_heads, head_dim=cfg.head_dim)
    greedy = sampler.Sampler(net, tok, cache)
    out = []
    for prompts, batch, length in groups:
        for start in range(0, len(prompts), batch):
            chunk = prompts[start : start + batch]
            padded = chunk + [chunk[-1]] * (batch - len(chunk))  # one batch shape per group: one compilation
            result = greedy(padded, max_generation_steps=new_tokens, max_prompt_length=length, temperature=0.0,
                            eos_tokens=list(stop), return_logprobs=True)
            pairs = zip(result.tokens[: len(chunk)], result.logprobs[: len(chunk)])
            out += [(list(map(int, t)), list(map(float, p))) for t, p in pairs]
    return out


def bucket(lengths: list[int], multiple: int = 64) -> int:
    return -(-max(lengths) // multiple) * multiple


def round_trip(export: Path, server_factory, prompts: list[str], new_tokens: int) -> dict:
    """An export's hf/ in Tunix (float32) against its gguf/ served by llama.cpp: the first `new_tokens` greedy
    tokens of each prompt on both sides, up to an end-of-turn. {"same": [bool], "theirs", "ours", "lengths"}."""
    from tunixhack.train import model as models

    source = models.resolve(str(export / "hf"))
    tok = models.load_tokenizer(source)
    stop = tuple(models.token_ids(tok)[k] for k in ("eos", "end_of_turn"))
    (gguf,) = (export / "gguf").glob("*.gguf")
    server = server_factory(gguf, parallel=PARITY_SLOTS, context=PARITY_CONTEXT)
    ids = [[tok.bos_id()] + tok.encode(p) for p in prompts]
    assert [llama_ids(server, p) for p in prompts] == [i[1:] for i in ids]  # its tokenizer is ours
    with ThreadPoolExecutor(len(prompts)) as pool:
        theirs = [until_stop(t, stop) for t in pool.map(lambda i: llama_greedy(server, i, new_tokens)[0], ids)]
    ours = [until_stop(t, stop) for t, _ in
            tunix_greedy(source, tok, [(prompts, len(prompts), bucket([len(i) for i in ids]))], new_tokens, stop)]
    return {"same": [t == o for t, o in zip(theirs, ours)], "theirs": theirs, "ours": ours,
            "lengths": [len(i) for i in ids]}


# --- the logits parity (test_gemma_parity.py, bench/llama_parity.py) ---------------------------------------
F32_KV_CACHE = ("--cache-type-k", "f32", "--cache-type-v", "f32")  # llama.cpp's default KV cache is f16
WINDOW = 512  # Gemma 3's sliding window: a prompt longer than this reaches past it


def write_f32_gguf(source, tok, path: Path) -> Path:
    """The dequantized weights as an F32 GGUF, written by our exporter (what `export.py --gguf f32` calls)."""
    from tunixhack.train import gguf_out, hf
    from tunixhack.train import model as models

    cfg = hf.model_config(hf.read_config(source.path), "float32")
    added = hf.read_tokenizer_config(source.path).get("added_tokens_decoder")
    gguf_out.write(str(path), hf.read_tensors(source.path), cfg, tok, models.token_ids(tok), "f32", path.stem, added)
    return path


def parity_rows(source, tok, server, short: list[str], long: list[str], new_tokens: int, long_batch: int,
                dtype: str = "float32") -> tuple[list[dict], dict]:
    """Both sides' greedy continuations of every prompt (BOS first; `server` has PARITY_SLOTS).

    One row per prompt: its length, both sides' tokens up to an end of generation, how many greedy tokens agree
    before the first difference, and each agreed token's log-probability difference. Also the seconds each
    side took (Tunix's include loading and compiling)."""
    ids = [[tok.bos_id()] + tok.encode(p) for p in short + long]
    started = time.monotonic()
    with ThreadPoolExecutor(len(ids)) as pool:
        theirs = list(pool.map(lambda i: llama_greedy(server, i, new_tokens), ids))
    seconds = {"llama_cpp": time.monotonic() - started}
    started = time.monotonic()
    ours = tunix_greedy(source, tok, [(short, len(short), bucket([len(i) for i in ids[: len(short)]])),
                                      (long, long_batch, bucket([len(i) for i in ids[len(short) :]]))],
                        new_tokens, dtype=dtype)
    seconds["tunix"] = time.monotonic() - started
    rows = []
    for prompt_ids, (their_ids, their_lp), (our_ids, our_lp) in zip(ids, theirs, ours):
        same = 0
        while same < min(len(their_ids), len(our_ids)) and their_ids[same] == our_ids[same]:
            same += 1
        rows.append({"length": len(prompt_ids), "theirs": until_stop(their_ids), "ours": until_stop(our_ids),
                     "agree": same, "logprob_diffs": [abs(a - b) for a, b in zip(their_lp[:same], our_lp[:same])]})
    return rows, seconds


def max_logprob_diff(rows: list[dict], long: bool) -> float:
    return max((d for r in rows if (r["length"] > WINDOW) == long for d in r["logprob_diffs"]), default=math.nan)


def parity_figures(rows: list[dict], new_tokens: int) -> dict:
    long = [r for r in rows if r["length"] > WINDOW]
    return {"prompts": len(rows), "past_window": len(long),
            "long_lengths": [min((r["length"] for r in long), default=0), max((r["length"] for r in long), default=0)],
            "top1_agree": sum(r["agree"] > 0 for r in rows),
            f"identical_{new_tokens}_tokens": sum(r["theirs"] == r["ours"] for r in rows),
            "max_logprob_diff_short": round(max_logprob_diff(rows, False), 4),
            "max_logprob_diff_long": round(max_logprob_diff(rows, True), 4)}
