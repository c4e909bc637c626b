"""Greedy decoding on both sides, Tunix (float32, its own Sampler) and llama.cpp (/completion), token by token:
what the parity tests (test_gemma_parity.py) and the real-model tier's round trip (test_gemma_train.py) compare.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# llama.cpp's end-of-generation tokens for Gemma's vocabulary (<eos>, <end_of_turn>, and "</s>", which it
# promotes to control); Tunix stops on the same ones
STOP_IDS = (1, 106, 212)


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
                                        "post_sampling_probs": False, "cache_prompt": False})
    assert reply["tokens_evaluated"] == len(ids), reply["tokens_evaluated"]  # a token array gets no extra BOS
    steps = reply["completion_probabilities"]
    return [s["id"] for s in steps], [s["logprob"] for s in steps]


def tunix_greedy(source, tok, groups: list[tuple[list[str], int, int]], new_tokens: int, stop=STOP_IDS):
    """Tunix's greedy continuation (its own Sampler, float32) of each prompt: [(ids, log-probabilities)].

    groups: (prompts, batch, padded prompt length); one compiled program per group."""
    from tunix.generate import sampler

    from tunixhack.train import model as models

    net, cfg = models.load_base(source, models.make_mesh(None), "float32")
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
    server = server_factory(gguf, parallel=len(prompts), context=len(prompts) * 512)
    ids = [[tok.bos_id()] + tok.encode(p) for p in prompts]
    assert [llama_ids(server, p) for p in prompts] == [i[1:] for i in ids]  # its tokenizer is ours
    with ThreadPoolExecutor(len(prompts)) as pool:
        theirs = [until_stop(t, stop) for t in pool.map(lambda i: llama_greedy(server, i, new_tokens)[0], ids)]
    ours = [until_stop(t, stop) for t, _ in
            tunix_greedy(source, tok, [(prompts, len(prompts), bucket([len(i) for i in ids]))], new_tokens, stop)]
    return {"same": [t == o for t, o in zip(theirs, ours)], "theirs": theirs, "ours": ours,
            "lengths": [len(i) for i in ids]}
