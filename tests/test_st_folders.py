"""Folders saved by sentence-transformers and other tools: each either gives sentence-transformers'
vectors or is refused with the reason, never silently different vectors."""

import json
import re
import shutil
import warnings

import numpy as np
import pytest

import mlx_embed

from .reference import NEEDS_SENTENCE_TRANSFORMERS, NEEDS_TORCH, NEEDS_TRANSFORMERS

TEXTS = ["hello world", "The quick brown fox jumps over the lazy dog.", "Café naïve résumé ÉCOLE", "今天天气很好。",
         "Embeddings map sentences to VECTORS. " * 6]


def _copy(minilm_path, dst, skip=()):
    """A copy of the MiniLM folder whose files the test may edit; the 90 MB weights are linked, not copied."""
    dst.mkdir(parents=True)
    for f in minilm_path.iterdir():
        if f.name in skip:
            continue
        if f.suffix == ".safetensors":
            (dst / f.name).symlink_to(f)
        else:
            (shutil.copytree if f.is_dir() else shutil.copy)(f, dst / f.name)
    return dst


def _edit(path, **changes):
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(changes)
    path.write_text(json.dumps(data))


def _reference(folder, texts=TEXTS, method="encode"):
    import gc

    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = st.SentenceTransformer(str(folder), device="cpu")
        vectors = getattr(model, method)(texts)
    del model
    gc.collect()  # a SentenceTransformer is freed only by the cycle collector: 60 MB per test otherwise
    return vectors


def _assert_same(ours, reference):
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=2e-5)


@pytest.mark.parametrize("name", ["some-model", "all-MiniLM-L6-v2"])  # a folder of its own; one named like the registry model
@pytest.mark.parametrize("mode", ["cls", ["cls"]])
def test_sentence_transformers_6_pooling_config_is_read(minilm_path, tmp_path, name, mode):
    """sentence-transformers 6 writes ``pooling_mode`` (a name or a list) instead of the pooling_mode_* flags."""
    folder = _copy(minilm_path, tmp_path / name)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 384, "pooling_mode": mode}))
    model = mlx_embed.load(folder)
    assert model.spec.pooling == "cls"
    _assert_same(model.encode(TEXTS), _reference(folder))


def test_old_pooling_config_without_a_mode_is_mean_as_in_sentence_transformers(minilm_path, tmp_path):
    folder = _copy(minilm_path, tmp_path / "some-model")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 384}))
    assert mlx_embed.load(folder).spec.pooling == "mean"


@pytest.mark.parametrize("name", ["some-model", "all-MiniLM-L6-v2"])
def test_a_pipeline_step_mlx_embed_does_not_run_is_refused(minilm_path, tmp_path, name):
    """A Dense layer after pooling (LaBSE has one) changed the vectors and their size, silently."""
    folder = _copy(minilm_path, tmp_path / name)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match=r"modules.json\) has Dense \(2_Dense\), which mlx_embed does not run"):
        mlx_embed.load(folder)
    with pytest.raises(ValueError, match="Dense"):
        mlx_embed.load(folder, pooling="mean")


def test_a_registry_named_folder_with_an_unsupported_pooling_is_refused(minilm_path, tmp_path):
    """It used the registry's mean pooling instead of the folder's max (cosine 0.32 to sentence-transformers)."""
    folder = _copy(minilm_path, tmp_path / "all-MiniLM-L6-v2")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 384, "pooling_mode": "max"}))
    with pytest.raises(ValueError, match=r"pooling \['max'\] is not supported"):
        mlx_embed.load(folder)
    assert mlx_embed.load(folder, pooling="cls").spec.pooling == "cls"  # the caller's choice stands


def test_unsupported_pooling_says_no_choice_gives_the_models_vectors(minilm_path, tmp_path):
    folder = _copy(minilm_path, tmp_path / "some-model")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_weightedmean_tokens": True}))
    with pytest.raises(ValueError, match=r"\['weightedmean'\] is not supported \(so no choice below gives the model's own"):
        mlx_embed.load(folder)


def test_do_lower_case_lowers_the_texts_as_sentence_transformers_does(minilm_path, tmp_path):
    folder = _copy(minilm_path, tmp_path / "some-model")
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["normalizer"].update(lowercase=False, strip_accents=False)  # a cased tokenizer
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    _edit(folder / "tokenizer_config.json", do_lower_case=False)
    _edit(folder / "sentence_bert_config.json", do_lower_case=True)
    model = mlx_embed.load(folder)
    assert model.spec.lowercase
    texts = TEXTS + ["Hello [SEP] world", "ΟΔΟΣ"]  # str.lower() gives "[sep]" (no special token) and a final "ς"
    _assert_same(model.encode(texts), _reference(folder, texts))


def test_documents_take_the_document_prompt_before_passage_or_corpus(minilm_path, tmp_path):
    """sentence-transformers 6 takes "document" over "passage" and "corpus" (without "document", 6.2 adds an
    empty one and never reaches the others, which mlx_embed uses: see the README)."""
    folder = _copy(minilm_path, tmp_path / "some-model")
    _edit(folder / "config_sentence_transformers.json",
          prompts={"query": "q: ", "passage": "passage: ", "corpus": "corpus: ", "document": "doc: "})
    _assert_same(mlx_embed.load(folder).encode_document(TEXTS), _reference(folder, method="encode_document"))


@pytest.mark.parametrize("mode", ["mean", "cls"])
def test_pooling_without_the_prompt_leaves_its_tokens_out(minilm_path, tmp_path, mode):
    """``include_prompt: false``: pooling skips [CLS] and the prompt (mean: cosine 0.77 when it did not;
    cls then pools the first token after the prompt, as sentence-transformers does)."""
    folder = _copy(minilm_path, tmp_path / "some-model")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 384, "pooling_mode": mode, "include_prompt": False}))
    _edit(folder / "config_sentence_transformers.json", prompts={"query": "Represent this query for retrieval: ", "document": ""})
    model = mlx_embed.load(folder)
    _assert_same(model.encode_query(TEXTS), _reference(folder, method="encode_query"))
    _assert_same(model.encode(TEXTS), _reference(folder))


def test_a_prompt_without_an_end_token_is_counted_whole(tmp_path):
    """sentence-transformers takes one token off the prompt's length only when it ends in a special token:
    a Qwen-style tokenizer that appends none skipped one prompt token too few."""
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)

    from .conftest import _write_st_files, train_qwen_like_tokenizer

    folder = tmp_path / "qwen-mean"
    torch.manual_seed(0)
    config = transformers.Qwen3Config(vocab_size=640, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, head_dim=32, intermediate_size=128, max_position_embeddings=512)
    transformers.Qwen3Model(config).eval().save_pretrained(folder, safe_serialization=True)
    train_qwen_like_tokenizer(append_eos=False).save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"padding_side": "right", "pad_token": "<|endoftext|>"}))
    _write_st_files(folder, "mean", 64, 512, {"query": "Instruct: find it\nQuery:", "document": ""})
    _edit(folder / "1_Pooling" / "config.json", include_prompt=False)
    texts = ["the weather is nice today", "a second text"]
    model = mlx_embed.load(folder)
    _assert_same(model.encode_query(texts), _reference(folder, texts, method="encode_query"))
    # "" leaves pooling no token: sentence-transformers gives it a zero vector, which we refuse by name (it
    # was blamed on the weights as a zero embedding)
    assert not _reference(folder, ["", "x"], method="encode_query")[0].any()
    with pytest.raises(ValueError, match=r"texts\[0\] gives no tokens after the prompt's \d+, .*include_prompt: false"):
        model.encode_query(["", "x"])


def test_a_text_left_with_only_the_prompt_is_refused_before_anything_is_embedded(minilm_path, tmp_path):
    """A tokenizer that adds only a leading [CLS], pooling without the prompt's tokens: "" leaves nothing to pool.
    Past the first 512 texts too, that is found before any text is embedded (it came after 512 were)."""
    folder = _copy(minilm_path, tmp_path / "cls-only")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["post_processor"]["single"] = [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    _edit(folder / "1_Pooling" / "config.json", include_prompt=False)
    model = mlx_embed.load(folder)
    embedded = []
    forward = model._embed_batches
    model._embed_batches = lambda *a, **k: embedded.append(1) or forward(*a, **k)
    for truncate in (True, False):
        with pytest.raises(ValueError, match=r"texts\[600\] gives no tokens after the prompt's"):
            model.encode(["x"] * 600 + [""], prompt="query: ", truncate=truncate)
    assert embedded == []


@pytest.mark.parametrize(
    "prompts,default",
    [
        ({"query": "query: ", "document": "passage: "}, "document"),
        ({"query": "query: ", "document": ""}, "query"),  # an empty document prompt is no prompt, not the default
        ({"document": "passage: "}, "document"),  # no query prompt: encode_query uses none, not the default
    ],
)
def test_default_prompt_name_is_used_by_encode_only(minilm_path, tmp_path, prompts, default):
    folder = _copy(minilm_path, tmp_path / "some-model")
    _edit(folder / "config_sentence_transformers.json", prompts=prompts, default_prompt_name=default)
    model = mlx_embed.load(folder)
    for method in ("encode", "encode_query", "encode_document"):
        _assert_same(getattr(model, method)(TEXTS), _reference(folder, method=method))


@pytest.mark.parametrize("key", ["passage", "corpus"])
def test_a_saved_passage_or_corpus_prompt_is_the_document_prompt(minilm_path, tmp_path, key):
    """sentence-transformers documents encode_document as trying "document", "passage", "corpus"; 6.2 gives
    every model an empty "document" prompt first, which hides the others. mlx_embed uses the saved one."""
    folder = _copy(minilm_path, tmp_path / "some-model")
    _edit(folder / "config_sentence_transformers.json", prompts={"query": "query: ", key: "text: "}, default_prompt_name=None)
    model = mlx_embed.load(folder)
    np.testing.assert_array_equal(model.encode_document(TEXTS), model.encode(TEXTS, prompt="text: "))
    _assert_same(model.encode(TEXTS, prompt="text: "), _reference(folder, [f"text: {t}" for t in TEXTS]))


def test_bad_default_prompt_name_is_refused(minilm_path, tmp_path):
    folder = _copy(minilm_path, tmp_path / "some-model")
    _edit(folder / "config_sentence_transformers.json", default_prompt_name="title")
    with pytest.raises(ValueError, match="default_prompt_name 'title' is not one of its prompts"):
        mlx_embed.load(folder)


@pytest.mark.parametrize("name", ["some-model", "all-MiniLM-L6-v2"])
def test_without_sentence_bert_config_the_tokenizers_max_length_applies(minilm_path, tmp_path, name):
    """sentence-transformers 6 saves the limit as the tokenizer's model_max_length, not as max_seq_length."""
    folder = _copy(minilm_path, tmp_path / name, skip={"sentence_bert_config.json"})
    _edit(folder / "tokenizer_config.json", model_max_length=32)
    model = mlx_embed.load(folder)
    assert model.max_length == 32
    texts = ["word " * 300, "another sentence " * 30, "short"]
    with pytest.warns(mlx_embed.TruncationWarning):
        ours = model.encode(texts)
    _assert_same(ours, _reference(folder, texts))


def test_a_registry_named_folder_keeps_the_registrys_length_over_a_tokenizers_larger_one(minilm_path, tmp_path):
    """A tokenizer's generic limit (MiniLM's says 512) does not raise the registry's 256, which
    sentence-transformers' own files set; a smaller one lowers it (above)."""
    folder = _copy(minilm_path, tmp_path / "all-MiniLM-L6-v2", skip={"sentence_bert_config.json"})
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == 512
    assert mlx_embed.load(folder).max_length == 256


@pytest.mark.parametrize("key,value", [("strip_accents", True), ("tokenize_chinese_chars", False)])
def test_a_vocab_txt_tokenizer_follows_its_tokenizer_config(minilm_path, tmp_path, key, value):
    folder = _copy(minilm_path, tmp_path / "some-model", skip={"tokenizer.json"})
    _edit(folder / "tokenizer_config.json", **{key: value}, **({"do_lower_case": False} if key == "strip_accents" else {}))
    _assert_same(mlx_embed.load(folder).encode(TEXTS), _reference(folder))


def test_tensorflow_era_layernorm_names_load(minilm_path, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = _copy(minilm_path, tmp_path / "some-model", skip={"model.safetensors"})
    weights = load_file(str(minilm_path / "model.safetensors"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in weights.items()}
    assert renamed.keys() != weights.keys()
    save_file(renamed, str(folder / "model.safetensors"))
    np.testing.assert_array_equal(mlx_embed.load(folder).encode(TEXTS), mlx_embed.load(minilm_path).encode(TEXTS))


def test_an_early_sentence_transformers_layout_names_the_inner_folder(minilm_path, tmp_path):
    folder = tmp_path / "old"
    _copy(minilm_path, folder / "0_Transformer", skip={"1_Pooling", "modules.json"})
    shutil.copytree(minilm_path / "1_Pooling", folder / "1_Pooling")
    modules = json.loads((minilm_path / "modules.json").read_text())
    modules[0]["path"] = "0_Transformer"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(mlx_embed.ModelNotFoundError, match=r"early sentence-transformers folder.*move the files of 0_Transformer/ up"):
        mlx_embed.load(folder)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"hidden_act": "gelu"}, "hidden_act='gelu' is not supported"),
        ({"attention_bias": True}, "attention_bias: true is not supported"),
    ],
)
def test_qwen3_configs_it_would_compute_differently_are_refused(tiny_qwen3_hf, tmp_path, changes, message):
    folder = tmp_path / "qwen"
    shutil.copytree(tiny_qwen3_hf, folder)
    _edit(folder / "config.json", **changes)
    with pytest.raises(ValueError, match=message):
        mlx_embed.load(folder)


def test_quantized_weights_without_a_quantization_block_name_it(tiny_bert_4bit, tmp_path):
    folder = tmp_path / "q"
    shutil.copytree(tiny_bert_4bit, folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("quantization"), config.pop("quantization_config", None)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(folder))}: .*hold \.scales\) but config.json has no \"quantization\" block"):
        mlx_embed.load(folder)  # the folder named: the error comes from deep in build_model


@pytest.mark.parametrize(
    "block,message",
    [
        (True, r"quantization is True, not an object"),
        ({"group_size": "64", "bits": 4}, r"quantization.group_size is '64', not an int"),
        ({"group_size": 64, "bits": 4, "mode": "afine"}, r"quantization block .*'mode': 'afine'.* cannot be built by MLX"),
        ({"group_size": 64, "bits": 4, "mode": "mxfp4"}, r"quantization block .* cannot be built by MLX"),
        # a module's own entry at fault, not the block: it was named as the block's (valid) settings
        ({"group_size": 64, "bits": 4, "mode": "affine", "encoder.layer.1.output.dense": {"group_size": 64, "bits": 5, "mode": "mxfp8"}},
         r"quantization entry for encoder.layer.1.output.dense \{'group_size': 64, 'bits': 5, 'mode': 'mxfp8'\} cannot be built"),
    ],
)
def test_a_malformed_quantization_block_names_config_json(tiny_bert_4bit, tmp_path, block, message):
    folder = tmp_path / "q"
    shutil.copytree(tiny_bert_4bit, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization"] = config["quantization_config"] = block
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        mlx_embed.load(folder)


@pytest.mark.parametrize(
    "block,message",
    [
        ({"group_size": 64, "bits": 8}, r"stored as 4-bit, group size 64 \(for its \d+ inputs\), but config.json's quantization block gives it 8-bit, group size 64"),
        ({"group_size": 32, "bits": 4}, r"stored as 4-bit, group size 64 \(for its \d+ inputs\), but .* gives it 4-bit, group size 32"),
        ({"group_size": 64, "bits": 3}, r"stored as 4-bit, group size 64 \(for its \d+ inputs\), but .* gives it 3-bit, group size 64"),
    ],
)
def test_a_quantization_block_that_is_not_the_weights_is_named(tiny_bert_4bit, tmp_path, block, message):
    """The stored 4-bit group-64 weights under a block with other settings: the message named a parameter's shape,
    not the block (the bits and group size in it are the stored arrays' own: packed width and scales per row)."""
    folder = tmp_path / "q"
    shutil.copytree(tiny_bert_4bit, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization"] = config["quantization_config"] = block
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message + r".*Restore the checkpoint's config.json"):
        mlx_embed.load(folder)


@pytest.mark.parametrize("size", ["vocab_size", "intermediate_size", "hidden_size"])
def test_a_wrong_size_under_a_right_quantization_block_is_not_blamed_on_the_block(tiny_bert_4bit, tmp_path, size):
    """A review found the first version of the message above blaming the block (with the same settings, or with
    settings it made up from a wrong hidden size) where config.json's sizes were what differed."""
    folder = tmp_path / "q"
    shutil.copytree(tiny_bert_4bit, folder)
    config = json.loads((folder / "config.json").read_text())
    _edit(folder / "config.json", **{size: config[size] + 64})
    with pytest.raises(ValueError, match="does not match a bert model built from its config.json") as err:
        mlx_embed.load(folder)
    assert "quantization block" not in str(err.value)


def test_a_quantization_block_over_float_weights_is_refused(tiny_bert_hf, tmp_path):
    """Loaded before, and the model was then described as 3-bit (repr, embed --output)."""
    folder = tmp_path / "f"
    shutil.copytree(tiny_bert_hf, folder)
    _edit(folder / "config.json", quantization={"group_size": 64, "bits": 3})
    with pytest.raises(ValueError, match=r"quantization block \{'group_size': 64, 'bits': 3\}, but the weights are not quantized"):
        mlx_embed.load(folder)


@pytest.mark.parametrize(
    "file,changes,message",
    [
        ("1_Pooling/config.json", {"pooling_mode": 5}, r"1_Pooling/config.json: pooling_mode is 5, not a mode name"),
        ("1_Pooling/config.json", {"pooling_mode": []}, r"pooling_mode is \[\], not a mode name"),
        ("config_sentence_transformers.json", {"prompts": ["a"]}, r"config_sentence_transformers.json: prompts is \['a'\]"),
        ("config_sentence_transformers.json", {"prompts": "abc"}, r"prompts is 'abc', not an object"),
        ("config_sentence_transformers.json", {"prompts": []}, r"prompts is \[\], not an object"),
        ("config_sentence_transformers.json", {"prompts": {"query": 5}}, r"prompts is \{'query': 5\}, not an object"),
        ("config_sentence_transformers.json", {"prompts": {"q": "x"}, "default_prompt_name": ["q"]},
         r"default_prompt_name \['q'\] is not one of its prompts"),
    ],
)
@pytest.mark.parametrize("name", ["some-model", "all-MiniLM-L6-v2"])
def test_malformed_sentence_transformers_files_are_named(minilm_path, tmp_path, name, file, changes, message):
    """Before: an AttributeError traceback from deep in the loader, or a TypeError naming no file."""
    folder = _copy(minilm_path, tmp_path / name)
    _edit(folder / file, **changes)
    with pytest.raises(ValueError, match=message):
        mlx_embed.load(folder)


# ---------------------------------------------------------------- converted folders keep how the source embeds


def _convert(src, dst, **kwargs):
    from mlx_embed.conversion import convert

    return convert(src, dst, bits=8, report=False, **kwargs)


def _same_settings(src, dst):
    from mlx_embed.fidelity import spec_differences

    a, b = mlx_embed.load(src), mlx_embed.load(dst)
    assert spec_differences(a, b) == ()
    return a, b


def test_a_converted_registry_model_keeps_the_registrys_settings(minilm_path, tmp_path):
    """A folder named like bge-small without sentence-transformers files takes the registry's CLS pooling
    and query prefix; its conversion, named otherwise, lost them (encode_query cosine 0.43)."""
    src = _copy(minilm_path, tmp_path / "bge-small-en-v1.5", skip={"modules.json", "1_Pooling", "config_sentence_transformers.json", "sentence_bert_config.json"})
    _convert(src, tmp_path / "out")
    a, b = _same_settings(src, tmp_path / "out")
    assert (b.spec.pooling, b.spec.max_length) == ("cls", 512) and b.spec.query_prompt.startswith("Represent this sentence")
    cos = (a.encode_query(TEXTS) * b.encode_query(TEXTS)).sum(axis=1)
    assert cos.min() > 0.999


def test_a_converted_folder_keeps_a_pooling_folder_at_another_path(minilm_path, tmp_path):
    src = _copy(minilm_path, tmp_path / "some-model")
    (src / "1_Pooling").rename(src / "pool")
    (src / "pool" / "config.json").write_text(json.dumps({"embedding_dimension": 384, "pooling_mode": "cls", "include_prompt": False}))
    modules = json.loads((src / "modules.json").read_text())
    modules[1]["path"] = "pool"
    (src / "modules.json").write_text(json.dumps(modules))
    _edit(src / "config_sentence_transformers.json", prompts={"query": "query: ", "document": ""})
    _convert(src, tmp_path / "out")
    a, b = _same_settings(src, tmp_path / "out")
    assert (b.spec.pooling, b.spec.include_prompt) == ("cls", False)


def test_overwriting_a_conversion_leaves_none_of_its_settings(minilm_path, tmp_path):
    first = _copy(minilm_path, tmp_path / "first")
    (first / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "cls", "include_prompt": False}))
    _convert(first, tmp_path / "out")
    second = _copy(minilm_path, tmp_path / "all-MiniLM-L6-v2", skip={"modules.json", "1_Pooling"})
    _convert(second, tmp_path / "out", overwrite=True)
    _, b = _same_settings(second, tmp_path / "out")
    assert (b.spec.pooling, b.spec.normalize, b.spec.include_prompt) == ("mean", True, True)


def test_a_converted_folder_embeds_as_sentence_transformers_embeds_its_source(minilm_path, tmp_path):
    """The settings written for the converted folder, checked against sentence-transformers on the SOURCE:
    no Normalize module (raw vectors, norm ~6), do_lower_case over a cased tokenizer, a max length of its
    own. Converted at 32 bits, the weights are exact, so the vectors must agree to float32 rounding."""
    src = _copy(minilm_path, tmp_path / "some-model")
    (src / "modules.json").write_text(json.dumps([m for m in json.loads((src / "modules.json").read_text())
                                                  if not m["type"].endswith("Normalize")]))
    tokenizer = json.loads((src / "tokenizer.json").read_text())
    tokenizer["normalizer"].update(lowercase=False, strip_accents=False)  # a cased tokenizer
    (src / "tokenizer.json").write_text(json.dumps(tokenizer))
    _edit(src / "tokenizer_config.json", do_lower_case=False)
    _edit(src / "sentence_bert_config.json", do_lower_case=True, max_seq_length=12)
    from mlx_embed.conversion import convert

    convert(src, tmp_path / "out", bits=32, report=False)
    texts = TEXTS + ["Hello WORLD, ΟΔΟΣ"]
    reference = _reference(src, texts)
    assert np.linalg.norm(reference, axis=1).min() > 2  # not normalized, and cut at 12 tokens (the long text)
    with pytest.warns(mlx_embed.TruncationWarning, match="1 of 6 texts were longer than max_length=12"):
        _assert_same(mlx_embed.load(tmp_path / "out").encode(texts), reference)


def test_a_converted_registry_named_folder_keeps_the_registry_length(minilm_path, tmp_path):
    """A folder named all-MiniLM-L6-v2 without sentence_bert_config.json loads at the registry's 256 tokens;
    its conversion, named otherwise, fell back to the 512 positions. 256 is the max_seq_length of the
    upstream sentence-transformers/all-MiniLM-L6-v2 (its own sentence_bert_config.json)."""
    upstream = json.loads((minilm_path / "sentence_bert_config.json").read_text())["max_seq_length"]
    src = _copy(minilm_path, tmp_path / "all-MiniLM-L6-v2", skip={"sentence_bert_config.json"})
    _convert(src, tmp_path / "out")
    assert mlx_embed.load(src).max_length == mlx_embed.load(tmp_path / "out").max_length == upstream == 256


@pytest.mark.parametrize("bits,dtype", [(32, "float32"), (16, "float16")])
def test_a_float_conversion_is_labelled_with_its_files_dtype(minilm_path, tmp_path, bits, dtype):
    """--bits 32 wrote torch_dtype float16, so fit counted its weights at half their size on disk; the label
    is checked against the dtypes in the file's own safetensors header."""
    import struct

    from mlx_embed import fit
    from mlx_embed.conversion import convert

    convert(minilm_path, tmp_path / "out", bits=bits, report=False)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    weights = tmp_path / "out" / "model.safetensors"
    with open(weights, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {{"float32": "F32", "float16": "F16"}[dtype]}
    assert config["torch_dtype"] == dtype
    assert fit.weight_bytes(config, "cpu")["disk"] == pytest.approx(weights.stat().st_size, rel=0.01)


def test_convert_refuses_a_tokenizer_load_would_refuse_before_writing(minilm_path, tiny_qwen3_hf, tmp_path):
    src = tmp_path / "mixed"
    shutil.copytree(tiny_qwen3_hf, src)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (src / name).unlink(missing_ok=True)
        if (minilm_path / name).exists():
            shutil.copy(minilm_path / name, src / name)
    with pytest.raises(ValueError, match="the tokenizer files belong to another model"):
        mlx_embed.load(src)
    with pytest.raises(ValueError, match="the tokenizer files belong to another model"):
        _convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_do_lower_case_also_applies_to_a_vocab_txt_tokenizer(minilm_path, tmp_path):
    folder = _copy(minilm_path, tmp_path / "some-model", skip={"tokenizer.json"})
    _edit(folder / "tokenizer_config.json", do_lower_case=False)
    _edit(folder / "sentence_bert_config.json", do_lower_case=True)
    texts = ["Hello WORLD", "The Quick Brown Fox"]
    _assert_same(mlx_embed.load(folder).encode(texts), _reference(folder, texts))


def test_fidelity_names_settings_that_differ(capsys, minilm_path, tmp_path, monkeypatch):
    from mlx_embed import cli, fidelity

    monkeypatch.setattr(fidelity, "_corpora_for", lambda k: [])  # the bundled corpora take a minute on CPU

    _convert(minilm_path, tmp_path / "out")
    (tmp_path / "out" / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "cls"}))
    assert cli.main(["fidelity", str(minilm_path), str(tmp_path / "out")]) == 0
    assert "settings differ (reference vs candidate): pooling: 'mean' vs 'cls'" in capsys.readouterr().out


def test_fidelity_against_an_alias_compares_with_its_full_precision_source(capsys, minilm_path, minilm_4bit, tmp_path, monkeypatch):
    """The alias names the 4-bit checkpoint; with that in the Hugging Face cache, `fidelity minilm DST`
    compared DST with itself-like 4-bit weights instead of the full-precision model it was converted from."""
    import huggingface_hub.constants as c

    from mlx_embed import cli, fidelity

    monkeypatch.setattr(fidelity, "_corpora_for", lambda k: [])  # the bundled corpora take a minute on CPU
    repo = tmp_path / "models--mlx-community--all-MiniLM-L6-v2-4bit"
    shutil.copytree(minilm_4bit, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    assert mlx_embed.load("minilm").source == "hf-cache"
    assert cli.main(["fidelity", "minilm", str(minilm_4bit), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cosine_min"] < 0.95  # plain 4-bit against full precision (0.87 here), not 1.0 against itself


def test_a_converted_local_folder_records_the_folder_as_its_source(minilm_path, tmp_path):
    """A fine-tune saved under its base model's name was recorded as converted from the registry upstream."""
    src = _copy(minilm_path, tmp_path / "all-MiniLM-L6-v2")
    _convert(src, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["mlx_embed"]["source"] == str(src)


def test_a_missing_pooling_config_is_named_where_modules_json_puts_it(minilm_path, tmp_path):
    folder = _copy(minilm_path, tmp_path / "some-model", skip={"1_Pooling"})
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["path"] = "pool"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match=r"no sentence-transformers pooling config \(pool/config.json\)"):
        mlx_embed.load(folder)


def test_matryoshka_dim_matches_sentence_transformers_truncate_dim_renormalized(tiny_qwen3_hf):
    """``encode(dim=)`` cuts before normalizing; sentence-transformers' ``truncate_dim`` cuts the output of its
    pipeline (after its Normalize), so its rows, normalized again, are the reference."""
    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = st.SentenceTransformer(str(tiny_qwen3_hf), device="cpu", truncate_dim=32).encode(TEXTS)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    _assert_same(mlx_embed.load(tiny_qwen3_hf).encode(TEXTS, dim=32), reference)


def test_a_max_length_the_default_prompt_fills_names_that_prompt_and_prompt_empty(minilm_path, tmp_path):
    folder = _copy(minilm_path, tmp_path / "some-model")
    _edit(folder / "config_sentence_transformers.json", prompts={"query": "query: "}, default_prompt_name="query")
    model = mlx_embed.load(folder)  # "query: " is 3 tokens: [CLS] query : [SEP] takes 4 of max_length=4
    with pytest.raises(ValueError, match=r"the model's default prompt already take 4 tokens.*pass prompt='' to leave"):
        model.encode(["apple", "pear"], max_length=4)
    np.testing.assert_allclose(model.encode(["apple", "pear"], max_length=4, prompt=""), model.encode(["apple", "pear"], prompt=""), atol=1e-6)


@pytest.mark.parametrize("prompt", ["Instruct: {task}\nQuery: ", "Task {task}; reply in {json}: "])
def test_a_saved_prompt_with_braces_is_used_as_written(minilm_path, tmp_path, prompt):
    """A non-Qwen folder's query prompt holding ``{task}`` is text, as sentence-transformers embeds it: it was
    filled with "None" (cosine 0.71 to sentence-transformers), or failed with a KeyError on other braces."""
    folder = _copy(minilm_path, tmp_path / "some-model")
    _edit(folder / "config_sentence_transformers.json", prompts={"query": prompt, "document": ""})
    model = mlx_embed.load(folder)
    _assert_same(model.encode_query(TEXTS), _reference(folder, method="encode_query"))
    with pytest.raises(ValueError, match="takes no task"):
        model.encode_query(TEXTS, task="Find code")
    _edit(folder / "config_sentence_transformers.json", default_prompt_name="query")  # encode() adds it too
    _assert_same(mlx_embed.load(folder).encode(TEXTS), _reference(folder))


def test_a_conversion_described_by_the_registry_drops_the_sources_default_prompt(minilm_path, tmp_path):
    """A Hugging Face cache snapshot of a registry model is described by the registry (no default prompt); its
    conversion must not keep the source's ``default_prompt_name``, which sentence-transformers would prepend
    to every text of the converted folder while mlx_embed does not."""
    from mlx_embed.conversion import convert

    src = _copy(minilm_path, tmp_path / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / "0123abc")
    _edit(src / "config_sentence_transformers.json", prompts={"query": "query: ", "document": ""}, default_prompt_name="query")
    assert mlx_embed.load(src).spec.alias == "minilm" and mlx_embed.load(src).spec.default_prompt == ""
    convert(src, tmp_path / "out", bits=8, report=False)
    written = json.loads((tmp_path / "out" / "config_sentence_transformers.json").read_text())
    assert written["default_prompt_name"] is None and written["prompts"]["query"] == ""


def test_truncation_side_left_keeps_the_end_of_a_long_text_as_sentence_transformers_does(minilm_path, tmp_path):
    """transformers cuts where tokenizer_config.json's truncation_side says; the start was always kept.
    The last text is long enough (over 64 characters a token of max_length) to be tokenized from a part."""
    folder = _copy(minilm_path, tmp_path / "left")
    _edit(folder / "tokenizer_config.json", truncation_side="left")
    _edit(folder / "sentence_bert_config.json", max_seq_length=24)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
    texts = ["START " + " ".join(words * 3) + " FINISH", "a short text",
             "BEGIN " + " ".join(words[i % 11] + str(i) for i in range(600)) + " the very last words here"]
    assert len(texts[2]) > 64 * 24
    with pytest.warns(mlx_embed.TruncationWarning, match=r"2 of 3 texts .*their starts were cut") as seen:
        ours = mlx_embed.load(folder).encode(texts)
    assert "at least" in str(seen[0].message)  # the long one was tokenized from its end
    _assert_same(ours, _reference(folder, texts))
    right = mlx_embed.load(minilm_path).encode(texts, max_length=24)
    assert (ours[0] @ right[0]) < 0.95  # the two ends of the text embed differently: the check above can tell


def test_an_unknown_truncation_side_is_named(minilm_path, tmp_path):
    folder = _copy(minilm_path, tmp_path / "middle")
    _edit(folder / "tokenizer_config.json", truncation_side="middle")
    with pytest.raises(ValueError, match=r"tokenizer_config.json: truncation_side is 'middle', not 'right' or 'left'"):
        mlx_embed.load(folder)


def test_a_max_seq_length_the_special_tokens_fill_is_named_as_the_models_own(minilm_path, tmp_path):
    """The caller gave no max_length: the message named one (max_length=2) as if it were theirs."""
    folder = _copy(minilm_path, tmp_path / "two")
    _edit(folder / "sentence_bert_config.json", max_seq_length=2)
    model = mlx_embed.load(folder)
    with pytest.raises(ValueError, match=r"The model's default max length, 2, leaves no room .*already take 2 tokens\. "
                                         r"Use max_length > 2 \(a folder sets the default in sentence_bert_config.json, max_seq_length"):
        model.encode(["a text"])
    assert model.encode(["a text"], max_length=3).shape == (1, 384)
