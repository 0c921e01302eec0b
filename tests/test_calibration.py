"""Data-aware quantization: the calibration texts are disjoint from every evaluation set, GPTQ
against plain rounding and a hand-derived special case, the inverse factor against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_embed.calibrate import (
    CalibrationBatch,
    Quantized,
    _compensated,
    _inverse_factor,
    _second_moments,
    _token_weights,
    gptq_matrix,
)
from mlx_embed.calibration_texts import CALIBRATION_TEXTS
from mlx_embed.eval.corpora import list_corpora, load_corpus
from mlx_embed.samples import SAMPLE_TEXTS

from .reference import NEEDS_TORCH, NEEDS_TRANSFORMERS, dequantize, unpack

BATTERY = Path(__file__).parent / "battery" / "cases.json"


def _evaluation_texts() -> list[str]:
    texts = list(SAMPLE_TEXTS)
    for name in list_corpora():
        corpus = load_corpus(name)
        texts += corpus.doc_texts + corpus.query_texts
    for case in json.loads(BATTERY.read_text()):
        texts += [v for v in case.values() if isinstance(v, str) and v != case.get("id")]
        texts += [v for value in case.values() if isinstance(value, list) for v in value if isinstance(v, str)]
    return texts


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def test_calibration_texts_share_no_text_with_the_evaluation_sets():
    evaluation = [_norm(t) for t in _evaluation_texts()]
    assert len(evaluation) > 300  # the sample, four corpora and the battery were all read
    calibration = [_norm(t) for t in CALIBRATION_TEXTS]
    assert len(set(calibration)) == len(calibration) >= 100
    assert not set(calibration) & set(evaluation)
    # nor does a longer text of one set contain a text of the other
    long_eval = [e for e in evaluation if len(e) >= 20]
    long_cal = [c for c in calibration if len(c) >= 20]
    assert not [(c, e) for c in long_cal for e in evaluation if c in e]
    assert not [(c, e) for c in calibration for e in long_eval if e in c]


def test_calibration_texts_cover_english_russian_chinese_and_code():
    cyrillic = sum(any("\u0400" <= ch <= "\u04ff" for ch in t) for t in CALIBRATION_TEXTS)
    han = sum(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in CALIBRATION_TEXTS)
    marks = ("def ", "SELECT", "UPDATE", "CREATE", "{", "$", " -", "()", "\n", " = ", "+=", "`", "<")
    code = sum(any(mark in t for mark in marks) for t in CALIBRATION_TEXTS)
    short = sum(len(t.split()) <= 2 for t in CALIBRATION_TEXTS)
    assert cyrillic >= 25 and han >= 25 and code >= 25 and short >= 10, (cyrillic, han, code, short)


def test_inverse_factor_is_the_upper_cholesky_factor_of_the_damped_inverse():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 96)) @ rng.standard_normal((96, 96))
    H = x.T @ x
    U = _inverse_factor(H, damp=0.01)
    damped = H + np.eye(96) * 0.01 * np.mean(np.diag(H))
    expected = np.linalg.inv(damped)
    assert np.abs(np.tril(U, -1)).max() == 0 and (np.diag(U) > 0).all()
    assert np.abs(U.T @ U - expected).max() <= 1e-4 * np.abs(expected).max()


def test_each_text_weighs_the_same_whatever_its_length():
    """A text's real tokens weigh 1 / its length each (padding is dropped), not 1 each."""
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]])
    b = CalibrationBatch(mx.zeros((2, 4), dtype=mx.int32), mx.array(mask), mask.reshape(-1) != 0)
    # text 1: 3 real tokens -> 1/3 each; text 2: 1 real token -> 1
    assert np.allclose(_token_weights(b), [1 / 3, 1 / 3, 1 / 3, 1.0], rtol=0, atol=1e-12)


def test_second_moments_are_the_weighted_sums_numpy_computes():
    """``H = X^T diag(w) X`` and ``C = Xf^T diag(w) X`` over the batches, a column of ones appended
    (each token's weight enters once, not squared)."""
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 6)).astype(np.float32) for n in (5, 3)]
    xf = [x + 0.1 * rng.standard_normal(x.shape).astype(np.float32) for x in xs]
    ws = [rng.uniform(0.1, 1.0, n) for n in (5, 3)]
    H, C = _second_moments([mx.array(x) for x in xs], [mx.array(x) for x in xf], ws)

    def ones(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x.astype(np.float64), np.ones((len(x), 1))], axis=1)

    H_ref = sum(ones(x).T @ np.diag(w) @ ones(x) for x, w in zip(xs, ws))
    C_ref = sum(ones(f).T @ np.diag(w) @ ones(x) for x, f, w in zip(xs, xf, ws))
    assert H.shape == C.shape == (7, 7)
    assert np.abs(H - H_ref).max() <= 1e-5 * np.abs(H_ref).max()
    assert np.abs(C - C_ref).max() <= 1e-5 * np.abs(C_ref).max()


def _check_layout(q: Quantized, bits: int, group_size: int, shape: tuple[int, int]) -> None:
    assert q.codes.shape == shape and q.codes.max() < 2**bits
    assert q.scales.shape == q.biases.shape == (shape[0], shape[1] // group_size)
    # fp16-representable: what is stored is exactly what was used
    assert np.array_equal(q.scales.astype(np.float16).astype(np.float32), q.scales)
    assert np.array_equal(q.biases.astype(np.float16).astype(np.float32), q.biases)


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("bits,group_size", [(4, 32), (4, 64), (5, 64), (6, 128)])
def test_gptq_beats_plain_rounding_on_the_layer_output(bits, group_size, act_order):
    """Correlated inputs (as in a transformer): GPTQ's output error ||X (W - W_q)^T|| is well below
    mx.quantize's on the same data, while each weight stays on its group's grid."""
    rng = np.random.default_rng(bits * group_size)
    O, I, n = 96, 256, 2048
    mixing = rng.standard_normal((I, I)) * 0.2 + np.eye(I)
    x = rng.standard_normal((n, I)) * rng.uniform(0.2, 3.0, I) @ mixing  # (n, I)
    w = (rng.standard_normal((O, I)) * 0.05).astype(np.float32)
    H = x.T @ x
    order = np.argsort(-np.diag(H)) if act_order else None
    q = gptq_matrix(w, _inverse_factor(H if order is None else H[order][:, order], 0.01), bits, group_size, np.diag(H), order)
    _check_layout(q, bits, group_size, (O, I))
    packed, s, b = mx.quantize(mx.array(w), group_size, bits)
    plain = dequantize(np.array(packed), np.array(s.astype(mx.float16)), np.array(b.astype(mx.float16)), bits, group_size)
    ours_err = np.square(x @ (w - q.dequantize()).T).sum()
    plain_err = np.square(x @ (w - plain).T).sum()
    assert ours_err < 0.8 * plain_err, (ours_err, plain_err)


def test_gptq_with_uncorrelated_equal_inputs_is_rounding_to_nearest():
    """With H = identity no error is fed forward: every code is the nearest grid point of the
    original weight, on the grid chosen for its group."""
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((32, 128)) * 0.05).astype(np.float32)
    q = gptq_matrix(w, _inverse_factor(np.eye(128), 0.0), 4, 64)
    g = w.reshape(32, 2, 64).astype(np.float64)
    nearest = np.clip(np.round((g - q.biases[..., None]) / q.scales[..., None]), 0, 15).reshape(32, 128)
    assert np.array_equal(q.codes, nearest)
    # the stored layout unpacks to the same codes (numpy reference of MLX's packing)
    from mlx_embed.conversion import _pack

    assert np.array_equal(unpack(np.array(_pack(mx.array(q.codes), 4)), 4), q.codes)


def test_grids_are_chosen_among_the_values_the_checkpoint_stores():
    """Scales and biases are picked among float16 or bfloat16 values, so storing them changes
    nothing; bfloat16 rounding checked against torch's cast."""
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    from mlx_embed.calibrate import stored

    rng = np.random.default_rng(2)
    x = rng.standard_normal(10_000) * 10.0 ** rng.integers(-6, 3, 10_000)
    as_bf16 = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(stored(x, mx.bfloat16), as_bf16)
    np.testing.assert_array_equal(stored(x, mx.float16), x.astype(np.float16))

    w = (rng.standard_normal((32, 128)) * 0.05).astype(np.float32)
    U = _inverse_factor(np.eye(128) + 0.1, 0.01)
    grids = {dtype: gptq_matrix(w, U, 4, 64, dtype=dtype) for dtype in (mx.float16, mx.bfloat16)}
    for dtype, q in grids.items():
        for values in (q.scales, q.biases):
            np.testing.assert_array_equal(stored(values, dtype), values)
    for values in (grids[mx.float16].scales, grids[mx.float16].biases):  # float16's grid is no bfloat16 one
        assert not np.array_equal(stored(values, mx.bfloat16), values)


def _augmented(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)


def test_compensation_keeps_w_when_inputs_agree_and_inverts_a_known_distortion():
    rng = np.random.default_rng(2)
    n, I, O = 4000, 24, 8
    w, bias = rng.standard_normal((O, I)), rng.standard_normal(O)
    x_f = rng.standard_normal((n, I)) + 0.3
    # same inputs: nothing to undo, whatever the ridge
    H = _augmented(x_f).T @ _augmented(x_f)
    w2, b2 = _compensated(w, bias, H, H, ridge=0.5)
    assert np.allclose(w2, w, atol=1e-9) and np.allclose(b2, bias, atol=1e-9)
    # rounded inputs x_q = A x_f + c: the refit is W A^-1 and b - W A^-1 c (hand-derived), for a small ridge
    A = np.eye(I) + 0.2 * rng.standard_normal((I, I))
    c = rng.standard_normal(I) * 0.1
    x_q = x_f @ A.T + c
    Hq = _augmented(x_q).T @ _augmented(x_q)
    C = _augmented(x_f).T @ _augmented(x_q)
    w3, b3 = _compensated(w, bias, Hq, C, ridge=1e-9)
    expected = w @ np.linalg.inv(A)
    assert np.allclose(w3, expected, atol=1e-5) and np.allclose(b3, bias - expected @ c, atol=1e-5)
    # without a bias the constant column is ignored
    w4, b4 = _compensated(w, None, Hq, C, ridge=1e-9)
    assert b4 is None and w4.shape == w.shape


# --- token table: sensitivity-weighted rounding -------------------------------------------------

TABLE_TEXTS = ["ok", "The bridge reopened after repairs.", "Привет, мир", "数据库", "def f(x): return x"]


@pytest.mark.parametrize("probe_tokens", [8192, 100], ids=["one-pass", "passes-of-a-few-copies"])
def test_table_sensitivity_equals_the_jacobians_of_transformers_bert(tiny_bert_hf, monkeypatch, probe_tokens):
    """Exact mode (every axis once) against torch autograd through transformers' BertModel:
    sum over token positions of J_t^T J_t, J_t = d normalize(CLS state) / d (table row at t). The probes
    run as copies of the batch, all in one backward pass or, past PROBE_TOKENS padded tokens, in several."""
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    import mlx_embed
    from mlx_embed import calibrate
    from mlx_embed.calibrate import SCRIPTS, make_batches, table_sensitivity, token_scripts
    from mlx_embed.pooling import POOLERS

    monkeypatch.setattr(calibrate, "PROBE_TOKENS", probe_tokens)

    embedder = mlx_embed.load(tiny_bert_hf)
    tokenizer = embedder.text_encoder.tokenizer
    cls_id = tokenizer.token_to_id("[CLS]")
    scripts = token_scripts(tokenizer, embedder.model.embeddings.word_embeddings.weight.shape[0])
    batches = make_batches(embedder.text_encoder, TABLE_TEXTS, 64, "right", batch_size=2)
    ours = table_sensitivity(embedder.model, "embeddings.word_embeddings", batches, POOLERS["cls"], scripts, [cls_id], probes=None)

    bert = transformers.BertModel.from_pretrained(str(tiny_bert_hf), add_pooling_layer=False).eval()
    D = bert.config.hidden_size
    expected = np.zeros((len(SCRIPTS), D, D))
    expected_cls = np.zeros((D, D))
    for b in batches:
        ids = torch.tensor(np.array(b.input_ids), dtype=torch.long)
        mask = torch.tensor(np.array(b.attention_mask), dtype=torch.long)
        base = bert.embeddings.word_embeddings(ids).detach()

        def embed(delta):
            y = bert(inputs_embeds=base + delta, attention_mask=mask).last_hidden_state[:, 0]
            return y / y.norm(dim=-1, keepdim=True)

        J = torch.autograd.functional.jacobian(embed, torch.zeros_like(base)).numpy().astype(np.float64)  # (B, D, B, L, D)
        for i in range(ids.shape[0]):
            for t in range(int(mask[i].sum())):
                Jt = J[i, :, i, t, :]  # (D out, D in)
                token = int(ids[i, t])
                expected[scripts[token]] += Jt.T @ Jt
                if token == cls_id:
                    expected_cls += Jt.T @ Jt
    scale = np.abs(expected).max()
    assert np.abs(ours.script_h - expected).max() <= 1e-4 * scale
    assert np.abs(ours.rows[cls_id][0] - expected_cls).max() <= 1e-4 * scale
    assert ours.rows[cls_id][1] == len(TABLE_TEXTS)
    first = {t: tokenizer.encode(t, add_special_tokens=False).ids[0] for t in ("中", "мир", "the", ",")}
    assert [SCRIPTS[scripts[i]] for i in first.values()] == ["cjk", "cyrillic", "latin", "other"]


def test_table_rounding_beats_data_free_rounding_under_each_rows_hessian():
    """Rows are rounded under their script's (or their own) Hessian: the weighted error e^T H e per
    row is well below that of the data-free "mse" grid, and the layout is mx.quantize's."""
    from mlx_embed.calibrate import SCRIPTS, TableSensitivity, gptq_table
    from mlx_embed.conversion import mse_quantize

    rng = np.random.default_rng(3)
    V, D = 300, 128

    def hessian() -> np.ndarray:
        a = rng.standard_normal((D, D)) * np.geomspace(1.0, 0.01, D)  # a decaying spectrum, as measured
        return a @ a.T * 50

    scripts = rng.integers(0, len(SCRIPTS), V).astype(np.int32)
    sens = TableSensitivity(scripts, np.stack([hessian() for _ in SCRIPTS]), np.full(len(SCRIPTS), 50.0), {7: (hessian(), 40)})
    w = (rng.standard_normal((V, D)) * 0.05).astype(np.float32)
    q = gptq_table(w, sens, 4, 64)
    _check_layout(q, 4, 64, (V, D))
    packed, s, b = mse_quantize(mx.array(w), 4, 64)
    plain = dequantize(np.array(packed), np.array(s), np.array(b), 4, 64)
    for rows, H in [(np.flatnonzero(scripts == k), sens.hessian(script=k)) for k in range(len(SCRIPTS))] + [([7], sens.hessian(row=7))]:
        ours = np.einsum("rd,de,re->", (w - q.dequantize())[rows], H, (w - q.dequantize())[rows])
        theirs = np.einsum("rd,de,re->", (w - plain)[rows], H, (w - plain)[rows])
        assert ours < 0.8 * theirs, (rows[:3], ours, theirs)


def test_table_rows_keep_the_clipping_with_the_smaller_weighted_error():
    """Each row is rounded with its groups' clipping chosen under the Hessian's diagonal and without
    it, and keeps the one with the smaller e^T H e: per row, never worse than either alone."""
    from mlx_embed.calibrate import SCRIPTS, TableSensitivity, gptq_table

    rng = np.random.default_rng(5)
    V, D = 400, 128
    a = rng.standard_normal((D, D)) * np.geomspace(1.0, 0.01, D)
    H = a @ a.T * 50
    sens = TableSensitivity(np.zeros(V, dtype=np.int32), np.stack([H] * len(SCRIPTS)), np.full(len(SCRIPTS), 1e6), {})
    w = (rng.standard_t(3, (V, D)) * 0.05).astype(np.float32)  # heavy tails: clipping matters
    q = gptq_table(w, sens, 4, 64)
    Hk = sens.hessian(script=0)
    hdiag = np.diag(Hk)
    perm = np.argsort(-hdiag, kind="stable")
    U = _inverse_factor(Hk[perm][:, perm], 0.01)

    def row_errors(w_hat: np.ndarray) -> np.ndarray:
        e = w_hat - w.astype(np.float64)
        return np.einsum("rd,de,re->r", e, Hk, e)

    weighted = row_errors(gptq_matrix(w.astype(np.float64), U, 4, 64, hdiag, perm).dequantize())
    plain = row_errors(gptq_matrix(w.astype(np.float64), U, 4, 64, None, perm).dequantize())
    ours = row_errors(q.dequantize())
    assert np.allclose(ours, np.minimum(weighted, plain), rtol=1e-6)
    assert (weighted < plain).sum() > 20 and (plain < weighted).sum() > 20  # both clippings win rows


def _query_codes_after_gptq(tiny_bert_hf) -> tuple[np.ndarray, np.ndarray]:
    import mlx_embed
    from mlx_embed.calibrate import gptq, make_batches
    from mlx_embed.conversion import module_role

    embedder = mlx_embed.load(tiny_bert_hf)
    model = embedder.model
    batches = make_batches(embedder.text_encoder, SAMPLE_TEXTS[:12], 64, "right", batch_size=4)
    query = model.encoder.layer[0].attention.self.query
    w = np.array(query.weight).astype(np.float64)  # (O, I), before gptq rounds it
    I = w.shape[1]
    H = np.zeros((I + 1, I + 1))
    for b in batches:
        types = b.token_type_ids if b.token_type_ids is not None else mx.zeros_like(b.input_ids)
        x = np.array(model.embeddings(b.input_ids, types)).reshape(-1, I)[b.real].astype(np.float64)  # layer 0's input
        n = np.array(b.attention_mask).sum(axis=1)
        xa = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        H += xa.T @ (np.repeat(1.0 / n, n)[:, None] * xa)  # right padding: each row's real tokens, in order
    Hx = H[:I, :I]
    order = np.argsort(-np.diag(Hx), kind="stable")
    expected = gptq_matrix(w, _inverse_factor(Hx[order][:, order], 0.01), 4, 32, np.diag(Hx), order)
    path = "encoder.layer.0.attention.self.query"
    got = gptq(model, {path: {"bits": 4, "group_size": 32}}, batches, module_role, act_order=True)[path]
    return got.codes, expected.codes


def test_gptq_on_a_model_rounds_in_act_order_under_its_inputs_hessian(tiny_bert_hf):
    """gptq() on a model with act-order rounds layer 0's query as gptq_matrix does under the Hessian numpy
    builds from that Linear's inputs (each text weighing 1, its tokens 1/len), columns by decreasing diagonal
    (Frantar et al.) with H permuted to match; ascending order or an unpermuted H round many codes otherwise."""
    got, expected = _query_codes_after_gptq(tiny_bert_hf)
    assert (got == expected).mean() > 0.99, (got == expected).mean()


def _obq_codes(w: np.ndarray, H: np.ndarray, damp: float, q, order: np.ndarray) -> np.ndarray:
    """GPTQ's rounding as Frantar et al. (2022) derive it from OBQ, with explicit inverses in float64 (no
    Cholesky factor): columns in ``order``, each rounded on its group's grid (``q``'s scales and biases),
    its error e spread over the columns not yet rounded by ``-e * Hinv[j, rest] / Hinv[j, j]``, then column j
    eliminated from ``Hinv``. ``H`` is damped as GPTQ damps it: ``damp`` times its mean diagonal."""
    I = w.shape[1]
    H = H + np.eye(I) * damp * np.mean(np.diag(H))
    Hinv = np.linalg.inv(H[order][:, order])
    W = w.astype(np.float64)[:, order].copy()
    codes = np.zeros(w.shape, dtype=np.uint8)
    for j in range(I):
        g = order[j] // q.group_size
        s, b = q.scales[:, g].astype(np.float64), q.biases[:, g].astype(np.float64)
        code = np.clip(np.round((W[:, j] - b) / s), 0, 2**q.bits - 1)
        codes[:, order[j]] = code
        e = (W[:, j] - (code * s + b)) / Hinv[0, 0]
        W[:, j + 1 :] -= np.outer(e, Hinv[0, 1:])
        Hinv = Hinv[1:, 1:] - np.outer(Hinv[1:, 0], Hinv[0, 1:]) / Hinv[0, 0]
    return codes


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_rounds_as_the_explicit_inverse_obq_update_does(act_order):
    """The Cholesky form (blocks of a group, lazy updates between them) against the textbook update, on a
    fixed grid: the same codes but for the few that float32 factoring tips over a rounding boundary."""
    rng = np.random.default_rng(7)
    O, I, n = 24, 192, 1024
    x = rng.standard_normal((n, I)) * rng.uniform(0.3, 3.0, I) @ (rng.standard_normal((I, I)) * 0.3 + np.eye(I))
    w = (rng.standard_normal((O, I)) * 0.05).astype(np.float32)
    H = x.T @ x
    order = np.argsort(-np.diag(H)) if act_order else np.arange(I)  # a given order fixes every grid up front
    q = gptq_matrix(w, _inverse_factor(H[order][:, order], 0.01), 4, 64, np.diag(H), order)
    expected = _obq_codes(w, H, 0.01, q, order)
    assert (q.codes == expected).mean() > 0.995, (q.codes == expected).mean()
    plain = np.clip(np.round((w.reshape(O, 3, 64) - q.biases[..., None]) / q.scales[..., None]), 0, 15).reshape(O, I)
    assert (expected != plain).mean() > 0.1  # the error feedback moved many codes off plain rounding
