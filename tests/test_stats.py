"""Checkpoint statistics against hand-computed counts."""

import mlx_embed
from mlx_embed.stats import checkpoint_stats


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
