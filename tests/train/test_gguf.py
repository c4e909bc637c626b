"""GGUF in and out on the tiny Gemma3: written with ggml-org's `gguf` writer in several tensor types, loaded
back through `--model FILE.gguf`, checked against the source weights, `gguf`'s own dequantization and Tunix's
logits; other architectures refused; `lmstudio:KEY` found in a models folder; run.json and export --gguf."""

import json
import shutil

import numpy as np
import pytest

from tests.train.conftest import SFT_FLAGS, TRACES, run_script
from tests.train.test_loading import logits

pytestmark = pytest.mark.train

# The largest |error| a type may make, relative to the largest |weight| of the tensor, with room for the f16
# block scale: half a step of Q8_0's symmetric grid (amax/127); a whole step of Q5_0's and Q4_0's (amax/16,
# amax/8), whose grids stop one step short on the side opposite the block's largest weight.
RELATIVE_ERROR = {"f16": 1e-3, "bf16": 4e-3, "q8_0": 0.6 / 127, "q5_0": 1.05 / 16, "q4_0": 1.05 / 8}
TEXTS = ["<start_of_turn>user\nHow many clips?<end_of_turn>\n<start_of_turn>model\n",
         "<reasoning>48 / 2 = 24</reasoning><answer>72</answer>", "  indented\n\tcode = [1, 2]  # café 🦊",
         "The quick brown fox jumps over the lazy dog."]


@pytest.fixture(scope="module")
def tiny_state(tiny):
    from tunixhack.train import hf

    source, tok, ids = tiny
    cfg = hf.model_config(hf.read_config(source.path), "float32")
    return hf.read_tensors(source.path), cfg, tok, ids


@pytest.fixture(scope="module")
def tiny_ggufs(tiny_state, tmp_path_factory):
    """{type: path} of the tiny model written as GGUF in each type."""
    from tunixhack.train import gguf_out

    tensors, cfg, tok, ids = tiny_state
    folder = tmp_path_factory.mktemp("gguf")
    paths = {}
    for kind in ["f32", *RELATIVE_ERROR]:
        paths[kind] = str(folder / f"tiny-{kind}.gguf")
        gguf_out.write(paths[kind], tensors, cfg, tok, ids, kind, "tiny")
    return paths


def loaded(path):
    """(Source, weights as the cache holds them) of `--model path`."""
    from tunixhack.train import hf
    from tunixhack.train import model as models

    source = models.resolve(path)
    return source, hf.read_tensors(source.path)


def test_an_f32_gguf_loads_back_to_the_same_weights_tokenizer_and_logits(tiny, tiny_state, tiny_ggufs):
    from tunixhack.train import model as models

    tensors, _, tok, ids = tiny_state
    source, weights = loaded(tiny_ggufs["f32"])
    assert set(weights) == set(tensors)
    for name, value in tensors.items():
        if name.endswith("norm.weight"):  # stored as w + 1: float32 keeps w to within its rounding of 1 + w
            assert np.max(np.abs(weights[name] - value)) <= 2**-24 * (1 + np.max(np.abs(value))), name
        else:
            assert np.array_equal(weights[name], value), name
    back = models.load_tokenizer(source)
    assert models.token_ids(back) == ids
    for text in TEXTS:
        assert back.encode(text) == tok.encode(text), text
    mesh = models.make_mesh(None)
    tokens = np.array([[ids["bos"], *tok.encode(TEXTS[1])]], np.int32)
    original, _ = models.load_base(tiny[0], mesh, "float32")
    from_gguf, cfg = models.load_base(source, mesh)
    assert cfg.num_layers == 2 and cfg.num_embed == 512
    ours, theirs = logits(from_gguf, tokens), logits(original, tokens)
    assert np.max(np.abs(ours - theirs)) < 1e-4
    assert (ours.argmax(-1) == theirs.argmax(-1)).all()


@pytest.mark.parametrize("kind", list(RELATIVE_ERROR))
def test_a_quantized_gguf_loads_within_its_types_error_and_bit_for_bit_as_gguf_dequantizes(kind, tiny_state,
                                                                                           tiny_ggufs):
    import gguf

    from tunixhack.train import gguf_in

    tensors, cfg, _, _ = tiny_state
    _, weights = loaded(tiny_ggufs[kind])
    for name, value in tensors.items():
        error = np.max(np.abs(weights[name] - value)) / np.max(np.abs(value))
        assert error <= RELATIVE_ERROR[kind], (name, error)
        if value.ndim == 2:
            assert error > 0, f"{name} was not stored as {kind}"
    names = gguf_in.hf_names(cfg.num_layers)
    for tensor in gguf.GGUFReader(tiny_ggufs[kind]).tensors:
        theirs = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(weights[names[tensor.name]].shape)
        ours = weights[names[tensor.name]] + (np.float32(1) if tensor.name.endswith("norm.weight") else 0)
        assert np.array_equal(ours, theirs), tensor.name


def test_a_second_load_reads_the_cache_and_a_changed_file_is_converted_again(tiny_ggufs, tmp_path, monkeypatch):
    from tunixhack.train import gguf_in

    path = tmp_path / "copy.gguf"
    shutil.copy(tiny_ggufs["q8_0"], path)
    first = gguf_in.cached_folder(str(path))

    def must_not_convert(*args):
        raise AssertionError("converted again")

    with monkeypatch.context() as patch:
        patch.setattr(gguf_in, "convert", must_not_convert)
        assert gguf_in.cached_folder(str(path)) == first
    shutil.copy(tiny_ggufs["f16"], path)  # same name, another file
    second = gguf_in.cached_folder(str(path))
    assert second != first
    assert gguf_in.provenance(second)["quantization"] == "F16"
    assert gguf_in.provenance(first)["quantization"] == "Q8_0"


def test_another_architecture_or_a_non_gguf_file_is_refused_in_one_line(train_env, tmp_path):
    import gguf

    llama = tmp_path / "llama.gguf"
    writer = gguf.GGUFWriter(str(llama), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    text = tmp_path / "notes.gguf"
    text.write_text("not a model\n")
    for model, says in ((llama, "is a 'llama' GGUF; only Gemma 3"), (text, "not a GGUF")):
        result = run_script("sft.py", "--model", model, "--data", TRACES, "--out", tmp_path / "run", env=train_env,
                            check=False)
        assert result.returncode == 2, result.stderr[-2000:]
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith("error: ") and says in lines[-1], result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "run" / "run.json").exists()


def test_lmstudio_keys_find_the_gguf_in_the_models_folder(tiny_ggufs, tmp_path, monkeypatch):
    from tunixhack.errors import UserError
    from tunixhack.train import gguf_in, lmstudio_models
    from tunixhack.train import model as models

    root = tmp_path / "models"
    repo = root / "lmstudio-community" / "gemma-3-270m-it-GGUF"
    repo.mkdir(parents=True)
    shutil.copy(tiny_ggufs["q8_0"], repo / "gemma-3-270m-it-Q8_0.gguf")
    shutil.copy(tiny_ggufs["f16"], repo / "gemma-3-270m-it-F16.gguf")
    (repo / "mmproj-gemma-3-270m-it-F16.gguf").write_bytes(b"GGUF")  # a vision projector: never a model
    other = root / "someone" / "tiny-GGUF"
    other.mkdir(parents=True)
    shutil.copy(tiny_ggufs["f32"], other / "tiny.gguf")
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(root))
    q8 = str(repo / "gemma-3-270m-it-Q8_0.gguf")
    for key in ("gemma-3-270m-it@q8_0", "lmstudio-community/gemma-3-270m-it-GGUF@Q8_0", "gemma-3-270m-it-q8_0",
                "google/gemma-3-270m-it@q8_0", "lmstudio-community/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q8_0.gguf"):
        assert lmstudio_models.find(f"lmstudio:{key}") == q8, key
    assert lmstudio_models.find("lmstudio:tiny") == str(other / "tiny.gguf")
    with pytest.raises(UserError, match=r"matches 2 files .*@QUANT"):
        lmstudio_models.find("lmstudio:gemma-3-270m-it")
    with pytest.raises(UserError, match=r"no such model .*tiny.gguf"):
        lmstudio_models.find("lmstudio:qwen3-14b")
    source = models.resolve("lmstudio:gemma-3-270m-it@q8_0")
    assert source.name == "lmstudio:gemma-3-270m-it@q8_0"
    assert source.path == gguf_in.cached_folder(q8)
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="does not exist"):
        lmstudio_models.find("lmstudio:tiny")


def test_a_run_from_a_quantized_gguf_records_it_and_exports_a_gguf_that_chats_in_our_format(train_env, tiny_ggufs,
                                                                                           tmp_path):
    import hashlib

    import gguf
    import jinja2

    from tunixhack.student import render_prompt

    source = tmp_path / "student-base.gguf"
    shutil.copy(tiny_ggufs["q8_0"], source)
    out = tmp_path / "sft"
    run_script("sft.py", "--model", source, "--data", TRACES, "--steps", 2, "--out", out, *SFT_FLAGS, env=train_env)
    record = json.loads((out / "run.json").read_text())["gguf"]
    assert record["file"] == str(source) and record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["quantization"] == "Q8_0" and record["quantized"] is True
    assert "dequantized" in record["trains"]

    export = tmp_path / "export"
    run_script("export.py", "--ckpt", out, "--out", export, "--gguf", "f16", env=train_env)
    report = json.loads((export / "export.json").read_text())["gguf"]
    path = export / "gguf" / "student-base-sft-f16.gguf"
    assert report["file"] == str(path) and report["tokenizer_agrees"] == "4/4"
    assert 0 < report["max_weight_difference"] < 1e-2  # f16 of hf/'s float32 weights
    reader = gguf.GGUFReader(str(path))
    field = lambda key: reader.get_field(key).contents()  # noqa: E731
    assert field("general.architecture") == "gemma3" and field("gemma3.block_count") == 2
    tokens = field("tokenizer.ggml.tokens")
    assert tokens[field("tokenizer.ggml.eot_token_id")] == "<end_of_turn>"
    assert tokens[field("tokenizer.ggml.bos_token_id")] == "<bos>"
    template = jinja2.Environment().from_string(field("tokenizer.chat_template"))
    chat = template.render(messages=[{"role": "user", "content": "What is 12 * 7?"}], bos_token="<bos>",
                           add_generation_prompt=True)
    assert chat == "<bos>" + render_prompt("What is 12 * 7?")
    # The exported GGUF is itself a --model: it loads back to hf/'s weights within f16's rounding.
    from tunixhack.train import hf

    _, weights = loaded(str(path))
    for name, value in hf.read_tensors(str(export / "hf")).items():
        assert np.max(np.abs(weights[name] - value)) <= RELATIVE_ERROR["f16"] * np.max(np.abs(value)), name
