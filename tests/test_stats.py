"""Checkpoint statistics against hand-computed counts."""

import json

import pytest

import mlx_embed
from mlx_embed.stats import checkpoint_stats, files_float_dtype


def test_minilm_fp32_parameter_count(minilm_path):
    # BertModel(6 layers, hidden 384, intermediate 1536, vocab 30522, 512 positions) incl. pooler:
    # embeddings 384*(30522+512+2) + 2*384 = 11,918,592
    # per layer 4*(384*384+384) + (384*1536+1536) + (1536*384+384) + 2*2*384 = 1,774,464; x6 = 10,646,784
    # pooler 384*384+384 = 147,840
    stats = checkpoint_stats(minilm_path)
    assert stats.parameters == 11_918_592 + 10_646_784 + 147_840 == mlx_embed.REGISTRY["minilm"].parameters
    assert abs(stats.bits_per_weight - 32) < 1e-9
    assert stats.weights_bytes == (minilm_path / "model.safetensors").stat().st_size


def test_4bit_group64_costs_4_5_bits_on_quantized_matrices(minilm_4bit):
    # converted without the pooler: 22,713,216 - 147,840 = 22,565,376 parameters.
    # Quantized matrices (all Linear + 3 embedding tables): 4 bits + fp16 scale and bias per 64 = 4.5 bits.
    # Unquantized: Linear biases and LayerNorms (fp16) = 16 bits on 6*(4*384+1536+384+4*384) + 2*384.
    stats = checkpoint_stats(minilm_4bit)
    assert stats.parameters == 22_565_376
    float_params = 6 * (4 * 384 + 1536 + 384 + 4 * 384) + 2 * 384
    expected = (4.5 * (stats.parameters - float_params) + 16 * float_params) / stats.parameters
    assert abs(stats.bits_per_weight - expected) < 1e-9


@pytest.mark.filterwarnings("ignore:.*stay in float")  # the recipe's 128-groups do not divide 64-wide inputs
def test_per_module_group_sizes_count_unpacked(tiny_qwen3_hf, tmp_path):
    """A module quantized at its own group size (here the recipe's 5-bit group-64 down_proj in a group-32
    file) is counted with that group size, not the file's default: the count is the float source's."""
    from safetensors.numpy import load_file

    from mlx_embed.conversion import convert

    convert(tiny_qwen3_hf, tmp_path / "q", recipe="compact", rounding="mse", group_size=32, report=False)
    quant = json.loads((tmp_path / "q" / "config.json").read_text())["quantization"]
    assert quant["group_size"] == 32 and quant["model.layers.1.mlp.down_proj"]["group_size"] == 64
    source = sum(v.size for f in tiny_qwen3_hf.glob("*.safetensors") for v in load_file(str(f)).values())
    assert checkpoint_stats(tmp_path / "q").parameters == source


def test_files_float_dtype_weighs_values_not_tensors(tmp_path):
    """The dominant float type is the one holding most values: one float16 (1000, 64) table (64,000
    values) outweighs five float32 (64,) norms (320 values), though they are more tensors."""
    import numpy as np
    from safetensors.numpy import save_file

    tensors = {"table": np.zeros((1000, 64), np.float16), **{f"norm{i}": np.ones(64, np.float32) for i in range(5)}}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    assert files_float_dtype(tmp_path) == "F16"


@pytest.mark.parametrize("dtype,bits", [("bfloat16", 16), ("float16", 16), ("float32", 32)])
def test_float_checkpoints_cost_their_dtype_bits_per_weight(tmp_path, dtype, bits):
    """A float checkpoint's bits per weight is its dtype's width: bfloat16 is 2 bytes a value like float16."""
    import mlx.core as mx

    mx.save_safetensors(str(tmp_path / "model.safetensors"), {"w": mx.zeros((3, 5), dtype=getattr(mx, dtype)),
                                                                "b": mx.zeros((5,), dtype=getattr(mx, dtype))})
    stats = checkpoint_stats(tmp_path, {})
    assert (stats.parameters, stats.bits_per_weight) == (20, bits)
