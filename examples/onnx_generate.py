"""Generate text from an exported language-model run with onnxruntime and numpy only.

No lstmkit and no torch: the ONNX file holds the weights, and its metadata the vocabulary.

    lstmkit train                                   # a charlm run, e.g. runs/charlm-20250101-120000
    lstmkit export runs/charlm-20250101-120000      # writes .../model.onnx, checked in onnxruntime
    python examples/onnx_generate.py runs/charlm-20250101-120000 --prompt "ROMEO." --length 300

The prompt runs through the model in one call (T = prompt length); then each new token is one
call with T = 1, feeding the returned state (hn, cn) back in as (h0, c0), and for a model with an
attention block (``model.attention``) its cached keys and values too.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort


def sample(logits: np.ndarray, temperature: float, top_k: int, banned: list[int], rng: np.random.Generator) -> int:
    """One id from softmax(logits / temperature) over the top_k likeliest (0: all; temperature 0: argmax)."""
    logits = logits.astype(np.float64)  # (V,)
    logits[banned] = -np.inf
    if temperature == 0:
        return int(np.argmax(logits))
    if 0 < top_k < logits.size:
        logits[logits < np.sort(logits)[-top_k]] = -np.inf
    z = logits / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(logits.size, p=p / p.sum()))


def split(prompt: str, rules: dict) -> list[str]:
    """The prompt's symbols, as lstmkit's own generation cuts them (the file's ``lstmkit.text`` rules): characters,
    or (word models) the lower-cased text's tokens by the rules' pattern, ``line_end`` after each non-empty line."""
    if rules["split"] == "characters":
        return list(prompt)
    symbols: list[str] = []
    for line in (prompt.lower() if rules["lowercase"] else prompt).split("\n"):
        tokens = re.findall(rules["token_pattern"], line)
        symbols += [*tokens, rules["line_end"]] if tokens else []
    return symbols


def join(prompt: str, symbols: list[str], rules: dict) -> str:
    """The prompt and the generated symbols as one text, as lstmkit's own generation writes it: characters as they
    are; words with ``line_end`` as a line break and a space before each other word except before
    ``no_space_before`` and after ``no_space_after``, and a space after the prompt on the same terms."""
    if rules["split"] == "characters":
        return prompt + "".join(symbols)
    no_space_before = set(rules["no_space_before"])
    text = ""
    for s in symbols:
        if s == rules["line_end"]:
            text += "\n"
        elif not text or text.endswith(tuple(rules["no_space_after"])) or s in no_space_before:
            text += s
        else:
            text += " " + s
    glue = prompt and not prompt[-1].isspace() and text and text[0] not in no_space_before | {"\n"}
    return prompt + (" " if glue else "") + text


def generate(model: str | Path, prompt: str, length: int, temperature: float = 0.8, top_k: int = 0,
             seed: int = 0) -> str:
    path = Path(model)
    if path.is_dir():
        path = path / "model.onnx"  # a run directory: `lstmkit export`'s default file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if "lstmkit.tokenizer" not in meta:
        raise SystemExit(f"{path} has no vocabulary in its metadata: export a text run with `lstmkit export RUN_DIR`")
    if "lstmkit.text" not in meta:
        raise SystemExit(f"{path} has no text rules in its metadata (lstmkit.text; older exports lack it): "
                         "export the run again with `lstmkit export RUN_DIR`")
    tok, rules = json.loads(meta["lstmkit.tokenizer"]), json.loads(meta["lstmkit.text"])
    tokens = tok["tokens"]
    index = {t: i for i, t in enumerate(tokens)}
    symbols = split(prompt, rules)
    ids = [index.get(s, tok["unk_id"]) for s in symbols] or [index[meta["lstmkit.start_symbol"]]]

    # Zero initial states, shaped from the graph's inputs: h0 (L, 1, P), c0 (L, 1, H); with an attention block
    # (model.attention) also its cached keys and values of earlier steps, empty at the start: (0, 1, H) each, their
    # first axis symbolic. Every state comes out (hn, cn[, keys_out, values_out]) in the order it goes in.
    state_inputs = [i for i in session.get_inputs() if i.name != "tokens"]
    feed = {i.name: np.zeros((i.shape[0] if isinstance(i.shape[0], int) else 0, 1, i.shape[2]), np.float32)
            for i in state_inputs}
    rng = np.random.default_rng(seed)
    new: list[int] = []
    x = np.asarray(ids, np.int64)[:, None]  # (T, 1): the whole prompt in one call
    for _ in range(length):
        logits, *state = session.run(None, {"tokens": x, **feed})  # logits (T, 1, V)
        feed = {i.name: s for i, s in zip(state_inputs, state, strict=True)}  # the state carries on
        new.append(sample(logits[-1, 0], temperature, top_k, [tok["pad_id"], tok["unk_id"]], rng))
        x = np.asarray([[new[-1]]], np.int64)  # (1, 1)
    return join(prompt, [tokens[i] for i in new], rules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model.onnx written by `lstmkit export`, or the run directory holding it")
    parser.add_argument("--prompt", default="", help="text to continue (empty: start at a line break)")
    parser.add_argument("--length", type=int, default=300, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 always takes the likeliest token")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the K likeliest only; 0 keeps all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(generate(args.model, args.prompt, args.length, args.temperature, args.top_k, args.seed))


if __name__ == "__main__":
    main()
