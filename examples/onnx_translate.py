"""Translate with an exported sequence-to-sequence run (g2p, seq2seq) using onnxruntime and numpy only.

No lstmkit and no torch: the two ONNX files hold the weights, their metadata the vocabularies and the
decoding settings; the beam search is written here in numpy, the same algorithm as
``lstmkit.models.decoding.beam_search``, so it returns the same outputs and scores.

    lstmkit train --task seq2seq --out runs/dates
    lstmkit export runs/dates                      # writes runs/dates/model.encoder.onnx and model.decoder.onnx
    python examples/onnx_translate.py runs/dates "5 de enero de 2021" "Jan 5, 2021" --n-best 3
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort

BOS, EOS, PAD = 2, 3, 0


class Translator:
    """The exported encoder and decoder step of a run, with its vocabularies."""

    def __init__(self, run_or_file: str | Path) -> None:
        path = Path(run_or_file)
        base = path / "model.onnx" if path.is_dir() else path
        stem = base.name.removesuffix(".onnx").removesuffix(".encoder")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one row batch of small matrices per call: threads cost more than they save
        self.encoder = ort.InferenceSession(str(base.with_name(f"{stem}.encoder.onnx")), options,
                                            providers=["CPUExecutionProvider"])  # fmt: skip
        self.decoder = ort.InferenceSession(str(base.with_name(f"{stem}.decoder.onnx")), options,
                                            providers=["CPUExecutionProvider"])  # fmt: skip
        meta = self.encoder.get_modelmeta().custom_metadata_map
        self.source = json.loads(meta["lstmkit.source_tokenizer"])
        self.target = json.loads(meta["lstmkit.target_tokenizer"])
        self.decoding = json.loads(meta["lstmkit.decoding"])
        self.index = {t: i for i, t in enumerate(self.source["tokens"])}
        self.none = any(i.name == "context" for i in self.decoder.get_inputs())

    def encode_text(self, text: str) -> list[int]:
        symbols = text.split() if self.source["kind"] == "word" else list(text)
        return [self.index.get(s, 1) for s in symbols]  # 1: <unk>

    def decode_ids(self, ids: list[int]) -> str:
        return ("" if self.target["kind"] == "char" else " ").join(self.target["tokens"][i] for i in ids)

    def beam_search(self, sources: list[list[int]], beam_size: int | None = None, n_best: int = 1,
                    length_penalty: float | None = None) -> list[list[dict]]:  # fmt: skip
        """n-best dicts {tokens, score, normalized, finished} per source, best first (beam_search's rules)."""
        K = beam_size or self.decoding["beam_size"]
        alpha = self.decoding["length_penalty"] if length_penalty is None else length_penalty
        B, S = len(sources), max(len(s) for s in sources)
        lengths = np.array([len(s) for s in sources], np.int64)
        tokens = np.zeros((S, B), np.int64)
        for b, s in enumerate(sources):
            tokens[: len(s), b] = s
        caps = np.ceil(lengths * self.decoding["max_length_a"] + self.decoding["max_length_b"]).astype(int)
        enc = self.encoder.run(None, {"tokens": tokens, "lengths": lengths})
        rows = np.repeat(np.arange(B), K)  # every sequence's K beams side by side
        feeds = {"h": enc[1][:, rows], "c": enc[2][:, rows], "feed": np.zeros((B * K, enc[0].shape[2]), np.float32),
                 "memory": enc[0][:, rows], "mask": (np.arange(S)[:, None] < lengths[None, :])[:, rows]}  # fmt: skip
        if self.none:
            feeds["context"] = enc[3][rows]
        scores = np.zeros((B, K))
        scores[:, 1:] = -np.inf
        token = np.full(B * K, BOS, np.int64)
        hist = np.zeros((B * K, 0), np.int64)
        finished: list[list[dict]] = [[] for _ in range(B)]
        done = [False] * B
        for t in range(int(caps.max())):
            log_probs, h, c, feed, _ = self.decoder.run(None, {"token": token, **feeds})
            V = log_probs.shape[1]
            cand = (scores.reshape(-1, 1) + log_probs.astype(np.float64)).reshape(B, K * V)
            top_i = np.argsort(-cand, axis=1, kind="stable")[:, : min(2 * K, K * V)]  # (B, 2K) best first
            top_s = np.take_along_axis(cand, top_i, axis=1)
            src_rows = np.arange(B)[:, None] * K + top_i // V
            tok = top_i % V
            is_eos = tok == EOS
            for b, j in zip(*np.nonzero(is_eos[:, :K] & np.isfinite(top_s[:, :K])), strict=True):
                if not done[b]:
                    finished[b].append(self._hyp(hist[src_rows[b, j]].tolist(), top_s[b, j], True, alpha))
            keep = np.argsort(is_eos.astype(np.int8), axis=1, kind="stable")[:, :K]  # the first K non-</s>
            scores = np.take_along_axis(top_s, keep, axis=1)
            flat = np.take_along_axis(src_rows, keep, axis=1).reshape(-1)
            token = np.take_along_axis(tok, keep, axis=1).reshape(-1)
            hist = np.concatenate([hist[flat], token[:, None]], axis=1)
            feeds.update(h=h[:, flat], c=c[:, flat], feed=feed[flat])
            for b in range(B):
                if done[b]:
                    continue
                if len(finished[b]) >= K:
                    done[b] = True
                elif t + 1 >= caps[b]:  # the length cap: the alive beams are returned unfinished
                    for k in range(K):
                        if np.isfinite(scores[b, k]):
                            finished[b].append(self._hyp(hist[b * K + k].tolist(), scores[b, k], False, alpha))
                    done[b] = True
                if done[b]:
                    scores[b] = -np.inf
            if all(done):
                break
        return [sorted(f, key=lambda h: (not h["finished"], -h["normalized"]))[:n_best] for f in finished]

    @staticmethod
    def _hyp(tokens: list[int], score: float, finished: bool, alpha: float) -> dict:
        n = len(tokens) + int(finished)
        penalty = ((5.0 + n) / 6.0) ** alpha if alpha else 1.0
        return {"tokens": tokens, "score": float(score), "normalized": float(score) / penalty, "finished": finished}

    def translate(self, texts: list[str], n_best: int = 1,
                  beam_size: int | None = None) -> list[list[tuple[str, float]]]:  # fmt: skip
        results = self.beam_search([self.encode_text(t) for t in texts], beam_size=beam_size, n_best=n_best)
        return [[(self.decode_ids(h["tokens"]), h["score"]) for h in hyps] for hyps in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a run directory after `lstmkit export`, or its model.encoder.onnx")
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--n-best", type=int, default=1)
    parser.add_argument("--beam", type=int, default=None)
    args = parser.parse_args()
    tr = Translator(args.model)
    beam = max(args.beam or 0, args.n_best) if args.beam or args.n_best > 1 else None
    for text, outputs in zip(args.texts, tr.translate(args.texts, args.n_best, beam), strict=True):
        for rank, (out, score) in enumerate(outputs, start=1):
            print(f"{text}\t{rank}\t{out}\t{score:.4f}\t(p = {math.exp(score):.3f})")


if __name__ == "__main__":
    main()
