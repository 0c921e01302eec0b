"""Pooling functions against hand-computed numpy values, on both padding sides."""

import mlx.core as mx
import numpy as np
import pytest

from mlx_embed.pooling import cls, l2_normalize, last_token, mean

H = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)  # (B=2, L=4, D=3)
RIGHT = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=np.int32)
LEFT = np.array([[0, 1, 1, 1], [0, 0, 1, 1]], dtype=np.int32)


def run(fn, mask):
    return np.array(fn(mx.array(H), mx.array(mask)))


def test_mean_right_padding():
    expected = np.stack([H[0, :3].mean(0), H[1, :2].mean(0)])
    np.testing.assert_allclose(run(mean, RIGHT), expected, rtol=1e-6)


def test_mean_left_padding():
    expected = np.stack([H[0, 1:].mean(0), H[1, 2:].mean(0)])
    np.testing.assert_allclose(run(mean, LEFT), expected, rtol=1e-6)


@pytest.mark.parametrize("mask,first,last", [(RIGHT, [0, 0], [2, 1]), (LEFT, [1, 2], [3, 3])])
def test_cls_and_last_token_follow_the_mask(mask, first, last):
    np.testing.assert_array_equal(run(cls, mask), H[[0, 1], first])
    np.testing.assert_array_equal(run(last_token, mask), H[[0, 1], last])


def test_last_token_without_padding_is_the_last_position():
    full = np.ones((2, 4), dtype=np.int32)
    np.testing.assert_array_equal(run(last_token, full), H[:, -1])


def test_l2_normalize_hand_values():
    out = np.array(l2_normalize(mx.array([[3.0, 4.0], [0.0, 0.0]])))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)


def test_mean_pooling_of_float16_hidden_sums_in_float32():
    """Half-precision hidden states (a GPU's default) are summed in float32: a float16 sum of 512 values
    near 3 is off by ~2e-3 against float64 numpy, a float32 one by ~1e-7."""
    rng = np.random.default_rng(0)
    h = (rng.standard_normal((2, 512, 64)) * 0.5 + 3).astype(np.float16)
    mask = np.ones((2, 512), np.int32)
    mask[1, 300:] = 0
    expected = (h.astype(np.float64) * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    got = np.array(mean(mx.array(h), mx.array(mask))).astype(np.float64)
    assert np.abs(got - expected).max() < 1e-5


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_prompt_left_out_of_pooling_is_counted_from_the_first_real_token(pooling):
    """``include_prompt: false`` with left padding: the ``skip`` positions after the padding go, not the
    padding's (hand-computed: row 0 is padded by 2, its prompt takes positions 2-3)."""
    from types import SimpleNamespace

    from mlx_embed.embedder import Embedder

    h = np.arange(2 * 6 * 3, dtype=np.float32).reshape(2, 6, 3)  # (B=2, L=6, D=3)
    mask = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=np.int32)
    fake = SimpleNamespace(_spec=SimpleNamespace(pooling=pooling))
    got = np.array(Embedder._pool(fake, mx.array(h), mx.array(mask), 3, False, skip=2))
    expected = np.stack([h[0, 4:].mean(0), h[1, 2:].mean(0)]) if pooling == "mean" else h[[0, 1], [4, 2]]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
