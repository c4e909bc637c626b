"""Greedy decoding with the hackathon's inference settings, through Tunix's own sampler.

The Kaggle evaluation decoded with temperature 1e-4, top_k 1, top_p 1.0, 768 new tokens, seed 42: the
same here, so eval.py measures what the judges saw. The choice is made on float32 logits (the output layer's
results in float32, then the argmax) whatever the model's dtype: in bfloat16, near-equal logits tie exactly and
the pick would depend on rounding (tunixhack/train/loss.py).
"""

from __future__ import annotations

INFERENCE = dict(temperature=1e-4, top_k=1, top_p=1.0, seed=42)
LOGITS = "float32: the output layer's results and the argmax in float32, whatever the model's dtype"
MAX_NEW_TOKENS = 768


def next_power_of_2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


class Greedy:
    """Batched greedy completion of rendered prompts; one compiled program per (batch, prompt length)."""

    def __init__(self, model, cfg, tok, ids: dict, max_new_tokens: int = MAX_NEW_TOKENS, max_prompt_len: int = 512):
        from tunix.generate import sampler

        from tunixhack.train.loss import float32_logits

        float32_logits(model)  # in place: the trained model's weights are shared, not copied
        self.max_new = max_new_tokens
        self.max_prompt = next_power_of_2(max_prompt_len)
        self.stop = [ids["eos"], ids["end_of_turn"]]
        self.tok = tok
        cache = sampler.CacheConfig(cache_size=self.max_prompt + max_new_tokens, num_layers=cfg.num_layers,
                                    num_kv_heads=cfg.num_kv_heads, head_dim=cfg.head_dim)
        self.sampler = sampler.Sampler(model, tok, cache)

    def fits(self, prompt: str) -> bool:
        return len(self.tok.encode(prompt)) + 1 <= self.max_prompt

    def __call__(self, prompts: list[str], batch: int = 8) -> list[str]:
        return [text for result, n in self._batches(prompts, batch) for text in result.text[:n]]

    def token_ids(self, prompts: list[str], batch: int = 8) -> list[list[int]]:
        """The generated token ids (up to the stop), for comparing two models token by token."""
        return [[int(t) for t in tokens] for result, n in self._batches(prompts, batch) for tokens in result.tokens[:n]]

    def _batches(self, prompts: list[str], batch: int):
        for start in range(0, len(prompts), batch):
            chunk = prompts[start : start + batch]
            padded = chunk + [chunk[-1]] * (batch - len(chunk))  # one batch shape: one compilation
            yield self.sampler(padded, max_generation_steps=self.max_new, max_prompt_length=self.max_prompt,
                               eos_tokens=self.stop, **INFERENCE), len(chunk)
