"""Sampling text from a language model, one token at a time, with temperature and top-k."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

MAX_LENGTH = 1_000_000  # tokens per call: about 10 minutes on one core; more is a typo, not a wish


def check_sampling_args(*, length: int, temperature: float, top_k: int) -> None:
    """Reject bad sampling arguments by name, before a model is loaded."""
    if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= MAX_LENGTH:
        raise ValueError(f"length must be an int in [0, {MAX_LENGTH}], got {length!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
        math.isfinite(temperature) and temperature >= 0
    ):
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 picks the most likely token), got {temperature!r}"
        )
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 keeps every token), got {top_k!r}")


def next_token(
    logits: Tensor, *, temperature: float, top_k: int, banned: Sequence[int] = (), generator: torch.Generator
) -> int:
    """Draw one id from ``logits`` (V,): softmax(logits / temperature) over the ``top_k`` most likely.

    ``temperature == 0`` returns the most likely id; ``top_k == 0`` keeps every id. ``banned`` ids
    (``<pad>``, ``<unk>``) are never drawn.
    """
    logits = logits.detach().to(torch.float64).clone()  # (V,)
    if banned:
        logits[list(banned)] = -math.inf
    if temperature == 0:
        return int(logits.argmax())
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = -math.inf
    scaled = logits / temperature
    if not torch.isfinite(scaled[logits > -math.inf]).all():  # a temperature so small that logits overflow:
        return int(logits.argmax())  # its limit, the most likely token (as temperature 0)
    probs = torch.softmax(scaled, dim=0)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def sample(
    model: nn.Module,
    prompt_ids: Sequence[int],
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    banned: Sequence[int] = (),
    seed: int = 0,
) -> list[int]:
    """Feed ``prompt_ids`` through ``model`` (one forward), then draw ``length`` ids, feeding each back.

    ``model(x, state) -> (logits, state)`` with x ids (T, 1) and logits (T, 1, V), as
    ``SequenceModel``. Returns the ``length`` new ids (not the prompt).
    """
    check_sampling_args(length=length, temperature=temperature, top_k=top_k)
    if len(prompt_ids) == 0:
        raise ValueError("prompt_ids must hold at least one id to start from")
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    x = torch.tensor(list(prompt_ids), dtype=torch.int64)[:, None]  # (T, 1)
    logits, state = model(x, None)  # (T, 1, V)
    out: list[int] = []
    for _ in range(length):
        token = next_token(logits[-1, 0], temperature=temperature, top_k=top_k, banned=banned, generator=generator)
        out.append(token)
        logits, state = model(torch.tensor([[token]]), state)  # (1, 1, V)
    model.train(was_training)
    return out
