"""Seq2Seq: attention masks, padding, teacher forcing, tied embeddings, variants; decoding: greedy, beam search
(width 1 is greedy, scores are the model's summed log-probabilities, n-best order), the length cap."""

from __future__ import annotations

import pytest
import torch

from lstmkit.models import ATTENTIONS, Seq2Seq, Seq2SeqModel, beam_search, greedy
from lstmkit.models.seq2seq import BOS_ID, EOS_ID, PAD_ID, gnmt_length_penalty

V_SRC, V_TGT = 11, 13


def make(attention: str = "general", *, seed: int = 0, eos_bias: float = 0.0, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = Seq2SeqModel(vocab_size=V_SRC, output_size=V_TGT, hidden_size=12, num_layers=2, dropout=0.0,
                       attention=attention, max_length_a=1.0, max_length_b=4, **kw)  # fmt: skip
    m = Seq2Seq(cfg).eval()
    with torch.no_grad():
        m.out.bias[EOS_ID] += eos_bias
    return m


def batch(seed: int = 1, lengths=(6, 2, 4, 5)):
    g = torch.Generator().manual_seed(seed)
    S, B = max(lengths), len(lengths)
    src = torch.randint(4, V_SRC, (S, B), generator=g)
    for b, n in enumerate(lengths):
        src[n:, b] = PAD_ID
    return src, torch.tensor(lengths)


@pytest.mark.parametrize("attention", ["dot", "general", "additive"])
def test_padding_gets_exactly_zero_attention(attention):
    m = make(attention)
    src, lengths = batch()
    tgt = torch.randint(4, V_TGT, (5, 4))
    tgt[0] = BOS_ID
    _, weights = m(src, lengths, tgt)  # (T, B, S)
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(weights[:, b, n:] == 0.0)  # exactly, not approximately
        assert torch.all(weights[:, b, :n] > 0)
        torch.testing.assert_close(weights[:, b].sum(-1), torch.ones(5))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_a_sequence_decodes_the_same_alone_and_padded_in_a_batch(attention):
    m = make(attention)
    src, lengths = batch()
    together = beam_search(m, src, lengths, beam_size=3)
    for b, n in enumerate(lengths.tolist()):
        alone = beam_search(m, src[:n, b : b + 1], lengths[b : b + 1], beam_size=3)
        assert alone[0][0].tokens == together[b][0].tokens
        assert alone[0][0].score == pytest.approx(together[b][0].score, abs=1e-5)


@pytest.mark.parametrize("eos_bias", [0.0, 2.0])  # 2.0: most hypotheses finish before the cap
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_beam_width_one_is_greedy(attention, eos_bias):
    m = make(attention, eos_bias=eos_bias)
    src, lengths = batch()
    g = greedy(m, src, lengths)
    b1 = beam_search(m, src, lengths, beam_size=1, length_penalty=0.0)
    for hg, (hb,) in zip(g, b1, strict=True):
        assert (hg.tokens, hg.finished) == (hb.tokens, hb.finished)
        assert hg.score == pytest.approx(hb.score, abs=1e-5)
        torch.testing.assert_close(hg.attention, hb.attention)
    if eos_bias:
        assert any(h.finished for h in g)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_beam_scores_are_the_models_summed_log_probabilities(attention):
    m = make(attention, eos_bias=1.5)
    src, lengths = batch()
    nbest = beam_search(m, src, lengths, beam_size=4, n_best=3, length_penalty=0.6)
    for k in range(3):
        hyps = [h[k] for h in nbest]
        rescored = m.score(src, lengths, [h.tokens + ([EOS_ID] if h.finished else []) for h in hyps])
        torch.testing.assert_close(rescored.double(), torch.tensor([h.score for h in hyps], dtype=torch.float64),
                                   atol=1e-4, rtol=1e-5)  # fmt: skip
    for hyps in nbest:  # n-best lists are ranked by the length-normalised score, finished first
        for h in hyps:
            n = len(h.tokens) + h.finished
            assert h.normalized == pytest.approx(h.score / gnmt_length_penalty(n, 0.6))
            assert h.attention.shape[0] == n
        keys = [(not h.finished, -h.normalized) for h in hyps]
        assert keys == sorted(keys)


def test_a_wider_beam_finds_at_least_as_likely_an_output():
    m = make("general", eos_bias=1.0)
    src, lengths = batch()
    b1 = beam_search(m, src, lengths, beam_size=1, length_penalty=0.0)
    b5 = beam_search(m, src, lengths, beam_size=5, length_penalty=0.0)
    for (h1,), (h5,) in zip(b1, b5, strict=True):
        if h1.finished and h5.finished:
            assert h5.score >= h1.score - 1e-9


@pytest.mark.parametrize("decode", ["greedy", "beam"])
def test_a_model_that_never_emits_eos_stops_at_the_length_cap(decode):
    m = make("dot", eos_bias=-1e4)
    src, lengths = batch()
    caps = torch.ceil(lengths.double() * 1.0 + 4).long()  # max_length_a=1, max_length_b=4
    hyps = greedy(m, src, lengths) if decode == "greedy" else [h[0] for h in beam_search(m, src, lengths, beam_size=3)]
    for h, cap in zip(hyps, caps.tolist(), strict=True):
        assert not h.finished and len(h.tokens) == cap and EOS_ID not in h.tokens


def test_teacher_forcing_one_reads_the_targets_and_zero_reads_the_models_own_predictions():
    m = make("general")
    src, lengths = batch()
    tgt = torch.randint(4, V_TGT, (6, 4))
    tgt[0] = BOS_ID
    forced, _ = m(src, lengths, tgt, teacher_forcing=1.0)
    # Step by step with the true previous symbols: the same logits.
    enc = m.encode(src, lengths)
    dec = m.start(enc)
    for t in range(6):
        logits, dec, _ = m.decode_step(tgt[t], dec, enc)
        torch.testing.assert_close(logits, forced[t])
    # Ratio 0 feeds back the argmax: the logits of greedy decoding, whatever the targets say.
    free, _ = m(src, lengths, tgt, teacher_forcing=0.0)
    other = tgt.clone()
    other[1:] = 4
    torch.testing.assert_close(m(src, lengths, other, teacher_forcing=0.0)[0], free)
    g = greedy(m, src, lengths, max_lengths=torch.full((4,), 6))
    for b, h in enumerate(g):
        steps = len(h.tokens) + h.finished
        assert free[:steps, b].argmax(-1).tolist() == (h.tokens + [EOS_ID] * h.finished)
    assert not torch.allclose(free, forced)
    with pytest.raises(ValueError, match=r"teacher_forcing must be in \[0, 1\]"):
        m(src, lengths, tgt, teacher_forcing=1.5)


def test_scheduled_sampling_mixes_per_sequence_and_step():
    m = make("general")
    src, lengths = batch()
    tgt = torch.randint(4, V_TGT, (6, 4))
    tgt[0] = BOS_ID
    forced, _ = m(src, lengths, tgt, teacher_forcing=1.0)
    free, _ = m(src, lengths, tgt, teacher_forcing=0.0)
    mixed, _ = m(src, lengths, tgt, teacher_forcing=0.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(mixed[:1], forced[:1])  # step 0 always reads <s>
    assert not torch.allclose(mixed, forced) and not torch.allclose(mixed, free)


def test_none_attention_has_the_parameters_of_dot_and_a_fixed_context():
    sizes = {a: sum(p.numel() for p in make(a).parameters()) for a in ATTENTIONS}
    assert sizes["none"] == sizes["dot"] < sizes["general"] < sizes["additive"]
    m = make("none")
    src, lengths = batch()
    tgt = torch.full((3, 4), 5)
    tgt[0] = BOS_ID
    _, weights = m(src, lengths, tgt)
    assert torch.all(weights == 0)


def test_tied_embeddings_share_one_matrix_and_need_matching_sizes():
    m = make("dot", tie_weights=True)
    assert m.out.weight is m.tgt_embedding.weight
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in make("dot").parameters()) - V_TGT * 12
    with pytest.raises(ValueError, match=r"tie_weights needs model\.embedding_dim == model\.hidden_size"):
        Seq2SeqModel(vocab_size=5, output_size=5, hidden_size=12, embedding_dim=8, tie_weights=True)


@pytest.mark.parametrize("variant", [{"peephole": True}, {"coupled": True}, {"layer_norm": True},
                                     {"recurrent_dropout": 0.2}, {"weight_dropout": 0.3}, {"zoneout": (0.1, 0.3)},
                                     {"bidirectional": False}])  # fmt: skip
def test_the_layer_variants_reach_encoder_and_decoder(variant):
    m = make("general", **variant)
    for name in ("peephole", "coupled", "layer_norm", "recurrent_dropout", "weight_dropout", "zoneout"):
        if name in variant:
            assert getattr(m.encoder, name) == getattr(m.decoder, name) == variant[name]
    src, lengths = batch()
    tgt = torch.full((3, 4), 5)
    tgt[0] = BOS_ID
    m.train()
    logits, _ = m(src, lengths, tgt)
    logits.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"model\.attention must be one of"):
        Seq2SeqModel(attention="cosine")
    with pytest.raises(ValueError, match=r"model\.cell must be 'lstm'"):
        Seq2SeqModel(cell="gru")
    with pytest.raises(ValueError, match=r"model\.vocab_size"):
        Seq2Seq(Seq2SeqModel())
    m = make()
    with pytest.raises(ValueError, match="src_lengths must be"):
        m.encode(torch.ones(3, 2, dtype=torch.int64), torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="n_best in"):
        beam_search(m, *batch(), beam_size=2, n_best=3)


@pytest.mark.parametrize("teacher_forcing", [1.0, 0.5])
def test_the_decoder_holds_one_dropout_and_dropconnect_mask_per_batch(monkeypatch, teacher_forcing):
    """Called once per step, the decoder still draws its recurrent-dropout and DropConnect masks once per batch and
    layer (lstmkit.nn.RecurrentBase.holding_masks), as a call over the whole sequence would; the next batch draws
    anew. Counted at the draws themselves."""
    import lstmkit.nn._base as base

    m = make("general", recurrent_dropout=0.2, weight_dropout=0.3).train()
    drawn = []
    real = base.weight_drop_mask
    monkeypatch.setattr(base, "weight_drop_mask", lambda w, p: drawn.append(w.shape) or real(w, p))
    src, lengths = batch()
    tgt = torch.full((5, 4), 5)
    tgt[0] = BOS_ID
    for _ in range(2):
        m(src, lengths, tgt, teacher_forcing=teacher_forcing)
    L, D = m.config.num_layers, 2 if m.config.bidirectional else 1
    # per batch: the encoder's L * D masks and the decoder's L, not L per step (5 steps)
    assert len(drawn) == 2 * (L * D + L)
    with m.decoder.holding_masks(), pytest.raises(ValueError, match=r"^inside holding_masks\(\) every call must "
                                                                     r"have the first call's batch size 4"):
        m.decoder(torch.zeros(1, 4, m.decoder.input_size))
        m.decoder(torch.zeros(1, 3, m.decoder.input_size))
    assert m.decoder._held_masks is None  # released after the block, even on an error
