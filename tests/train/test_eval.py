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
    assert protocol["decoding"] == {"greedy": True, "temperature": 1e-4, "top_k": 1, "top_p": 1.0, "seed": 42,
                                    "logits": "float32: the output layer's results and the argmax in float32, "
                                              "whatever the model's dtype"}
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


def test_greedy_picks_on_float32_logits_where_bfloat16_ties(tiny):
    """A bfloat16 tiny model whose embedding row j (> i) is row i with one entry a bfloat16 step higher: in
    float32, token j's logit is strictly larger; in bfloat16, the two logits round to one value and Tunix's
    stock argmax takes the lower id, i. Eval's greedy must answer j."""
    import jax.numpy as jnp
    import ml_dtypes
    import numpy as np
    from tunix.generate import sampler as tunix_sampler
    from tunix.sft import utils

    from tunixhack.student import render_prompt
    from tunixhack.train import loss
    from tunixhack.train import model as models
    from tunixhack.train.decode import INFERENCE, Greedy

    source, tok, ids = tiny
    mesh = models.make_mesh(None)
    prompt = render_prompt("Natalia sold 48 clips in April and half as many in May. How many in all?")
    prompt_ids = [tok.bos_id(), *tok.encode(prompt)]  # what Tunix's sampler feeds the model
    net, _ = models.load_base(source, mesh, "bfloat16")
    tokens = jnp.asarray([prompt_ids])
    real = jnp.ones_like(tokens, bool)
    x = np.asarray(loss.hidden_states(net, tokens, utils.build_positions_from_mask(real),
                                      utils.make_causal_attn_mask(real))[0, -1], np.float32)
    embedding = np.asarray(net.embedder.input_embedding[...].astype(jnp.float32))
    i = int(np.argmax(embedding @ x))
    j = next(t for t in range(tok.get_piece_size() - 1, i, -1) if not tok.is_byte(t) and t not in prompt_ids
             and tok.decode([t]) not in ("", tok.decode([i])))

    def to_bf16(v):
        return np.asarray(v, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)

    row = None
    for k in np.argsort(np.abs(x)):  # the smallest nudge first: most likely to vanish in bfloat16
        if x[k] == 0:
            continue
        candidate = embedding[i].copy()
        candidate[k] = np.nextafter(candidate[k].astype(ml_dtypes.bfloat16),
                                    ml_dtypes.bfloat16(np.sign(x[k]) * np.inf)).astype(np.float32)
        li, lj = float(embedding[i] @ x), float(candidate @ x)
        if lj > li and to_bf16(li) == to_bf16(lj):
            row = candidate
            break
    assert row is not None, "no bfloat16 tie could be constructed"

    def model_with_tie():
        model, cfg = models.load_base(source, mesh, "bfloat16")
        weights = model.embedder.input_embedding
        weights.set_value(weights[...].at[j].set(jnp.asarray(row, jnp.bfloat16)))
        return model, cfg

    stock, cfg = model_with_tie()
    cache = tunix_sampler.CacheConfig(cache_size=256, num_layers=cfg.num_layers, num_kv_heads=cfg.num_kv_heads,
                                      head_dim=cfg.head_dim)
    bf16 = tunix_sampler.Sampler(stock, tok, cache)([prompt], max_generation_steps=1, max_prompt_length=128,
                                                    eos_tokens=[ids["eos"]], **INFERENCE)
    assert list(bf16.tokens[0][:1]) == [i]  # the tie is real: a bfloat16 argmax takes the lower id

    model, cfg = model_with_tie()
    reply = Greedy(model, cfg, tok, ids, max_new_tokens=1, max_prompt_len=100)([prompt], batch=1)
    assert reply == [tok.decode([j])]
