"""Quickstart: train a small lstmkit.LSTM (with peepholes and LayerNorm) and watch the loss fall.

Task: read a noisy mixture of two sines and predict the next clean value at every step.
Runs in well under a minute on two CPU cores:  python examples/quickstart.py
"""

from __future__ import annotations

import math

import torch
from torch import nn

import lstmkit


def make_batch(batch: int, steps: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (T, B, 1) and next-step targets (T, B, 1) from random-phase, random-frequency sines."""
    t = torch.arange(steps + 1, dtype=torch.float32).unsqueeze(1)  # (T+1, 1)
    freq = 0.05 + 0.15 * torch.rand(1, batch, generator=gen)
    phase = 2 * math.pi * torch.rand(1, batch, generator=gen)
    clean = torch.sin(freq * t + phase) + 0.5 * torch.sin(2.7 * freq * t)  # (T+1, B)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=gen)
    return noisy[:-1].unsqueeze(-1), clean[1:].unsqueeze(-1)


class Forecaster(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.lstm = lstmkit.LSTM(1, hidden, num_layers=2, peephole=True, layer_norm=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)  # (T, B, H)
        return self.head(y)  # (T, B, 1)


def main() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = Forecaster()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    print(f"{model.lstm!r}: {lstmkit.param_count(model.lstm)} parameters")
    for step in range(1, 301):
        x, y = make_batch(32, 60, gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if step == 1 or step % 50 == 0:
            print(f"step {step:4d}  mse {loss.item():.4f}")
    x, y = make_batch(256, 60, gen)
    with torch.inference_mode():
        mse = nn.functional.mse_loss(model(x)[10:], y[10:]).item()
    print(f"held-out mse {mse:.4f} (predicting zero gives {y[10:].pow(2).mean().item():.4f})")


if __name__ == "__main__":
    main()
