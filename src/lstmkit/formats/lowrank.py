"""Low-rank factorisation of the gate weight matrices by truncated SVD.

Each gate matrix W (G, n) of a recurrent core (``weight_ih_l{k}`` and ``weight_hh_l{k}``, every
layer and direction) becomes W ~ A B with

.. math::
    W = U \\Sigma V^T, \\quad A = U_r \\Sigma_r^{1/2} \\;(G, r), \\quad B = \\Sigma_r^{1/2} V_r^T \\;(r, n)

the best rank-r approximation in the Frobenius norm (Eckart-Young). r is either given (``rank``,
capped at min(G, n)) or the smallest that keeps ``energy`` of sum(sigma^2). A matrix whose
factors would not be smaller than it (r (G + n) >= G n) stays dense. The factors are trainable
parameters of a ``torch.nn.utils.parametrize`` parametrization that returns A @ B when the weight
is read (once per forward call), so the model can be fine-tuned after factorising and every
consumer of the layer's weights (the C++ scan, export, streaming) works unchanged. Storage and
parameters shrink. In inference ``lstmkit.LSTM`` multiplies by the factors in turn (two thin
products per step, r (G + n) multiply-adds instead of G n); training and the other consumers
multiply by the rebuilt (G, n) matrix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from lstmkit.formats.integrity import copy_matching, save_tensors_file
from lstmkit.nn._base import RecurrentBase

FORMAT = "lstmkit.lowrank"
_A, _B = ".__left", ".__right"
_GATE = re.compile(r"^weight_(ih|hh)_l\d+(_reverse)?$")


class LowRank(nn.Module):
    """A parametrization holding trainable factors A (G, r) and B (r, n); the weight is A @ B."""

    def __init__(self, left: Tensor, right: Tensor) -> None:
        super().__init__()
        self.left = nn.Parameter(left.contiguous())
        self.right = nn.Parameter(right.contiguous())

    @property
    def rank(self) -> int:
        return self.left.shape[1]

    def forward(self, original: Tensor) -> Tensor:
        return self.left @ self.right  # (G, r) @ (r, n) -> (G, n)

    def factors(self) -> tuple[Tensor, Tensor]:
        """(A (G, r), B (r, n)): in inference lstmkit.LSTM multiplies by them in turn (lstmkit.nn.int8)."""
        return self.left, self.right

    def extra_repr(self) -> str:
        return f"rank={self.rank}, shape=({self.left.shape[0]}, {self.right.shape[1]})"


def gate_matrices(model: nn.Module) -> list[str]:
    """Names of the gate matrices of every ``lstmkit.nn`` recurrent core in ``model``."""
    out = []
    for mname, module in model.named_modules():
        if isinstance(module, RecurrentBase):
            out += [f"{mname}.{n}" if mname else n for n, _ in module.named_parameters(recurse=False) if _GATE.match(n)]
    return out


def choose_rank(singular_values: Tensor, *, rank: int | None = None, energy: float | None = None) -> int:
    """r from a target rank (capped at the number of singular values) or from the share of
    sum(sigma^2) to keep."""
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of rank and energy")
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        return min(rank, singular_values.numel())
    if isinstance(energy, bool) or not isinstance(energy, (int, float)) or not 0 < energy <= 1:
        raise ValueError(f"energy must be a number in (0, 1], got {energy!r}")
    share = torch.cumsum(singular_values.double() ** 2, 0) / (singular_values.double() ** 2).sum()
    return int(torch.searchsorted(share, torch.tensor(energy, dtype=torch.float64) - 1e-12).item()) + 1


def factorize(w: Tensor, *, rank: int | None = None, energy: float | None = None) -> tuple[Tensor, Tensor]:
    """The rank-r factors (A, B) of ``w`` (see the module docstring)."""
    U, S, Vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    r = choose_rank(S, rank=rank, energy=energy)
    root = S[:r].sqrt()
    return (U[:, :r] * root).to(w.dtype), (root[:, None] * Vh[:r]).to(w.dtype)


def _attach(model: nn.Module, factors: dict[str, tuple[Tensor, Tensor]]) -> None:
    modules = dict(model.named_modules())
    for name, (left, right) in factors.items():
        mname, _, attr = name.rpartition(".")
        module = modules[mname]
        p = getattr(module, attr)
        if (left.shape[0], right.shape[1]) != tuple(p.shape):
            raise ValueError(f"{name}: factors of shape {tuple(left.shape)} @ {tuple(right.shape)} do not make "
                             f"the model's {tuple(p.shape)}")  # fmt: skip
        parametrize.register_parametrization(module, attr, LowRank(left, right), unsafe=True)
        module.parametrizations[attr].original = nn.Parameter(p.new_empty(0), requires_grad=False)


def lowrank_model(model: nn.Module, *, rank: int | None = None, energy: float | None = None) -> dict[str, int]:
    """Factorise the gate matrices of ``model`` in place; returns the rank of each factorised one
    (matrices where factors would not save parameters are left dense and not listed)."""
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of rank and energy")
    if is_lowrank(model):
        raise ValueError("the model is factorised already")
    params = dict(model.named_parameters())
    names = gate_matrices(model)
    if not names:
        raise ValueError("the model has no lstmkit LSTM/GRU/RNN gate matrices to factorise")
    factors = {}
    for name in names:
        w = params[name]
        left, right = factorize(w, rank=rank, energy=energy)
        r = left.shape[1]
        if r * (w.shape[0] + w.shape[1]) < w.numel():
            factors[name] = (left, right)
    _attach(model, factors)
    return {n: f[0].shape[1] for n, f in factors.items()}


def is_lowrank(model: nn.Module) -> bool:
    return any(isinstance(m, LowRank) for m in model.modules())


def lowrank_factors(model: nn.Module) -> dict[str, LowRank]:
    out = {}
    for mname, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for attr, plist in module.parametrizations.items():
                if isinstance(plist[0], LowRank):
                    out[f"{mname}.{attr}" if mname else attr] = plist[0]
    return out


def _plain_tensors(model: nn.Module) -> dict[str, Tensor]:
    return {n: t.detach() for n, t in model.state_dict().items() if "parametrizations." not in n}


def save_lowrank(model: nn.Module, path: str | Path) -> int:
    """Write a factorised model: the factors of each factorised matrix, the rest as it is. Returns bytes."""
    factors = lowrank_factors(model)
    if not factors:
        raise ValueError("the model is not factorised (lowrank_model first)")
    out = {}
    for name, f in factors.items():
        out[name + _A], out[name + _B] = f.left.detach().contiguous(), f.right.detach().contiguous()
    out.update({n: t.contiguous() for n, t in _plain_tensors(model).items()})
    ranks = {n: f.rank for n, f in factors.items()}
    save_tensors_file(out, path, metadata={"format": FORMAT, "ranks": json.dumps(ranks)})  # sealed, atomic
    return Path(path).stat().st_size


def load_lowrank(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a file written by :func:`save_lowrank` into ``model`` built (dense) from the same config."""
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a factorised lstmkit model (metadata format {meta.get('format')!r})")
        stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    factors = {}
    for name in json.loads(meta["ranks"]):
        left, right = stored.pop(name + _A, None), stored.pop(name + _B, None)
        if left is None or right is None:
            raise ValueError(f"{path}: the factors of {name} are incomplete")
        factors[name] = (left, right)
    params = dict(model.named_parameters())
    unknown = [n for n in factors if n not in params]
    if unknown:
        raise ValueError(f"{path} holds factors of tensors the model does not have: {unknown}")
    _attach(model, factors)
    plain = _plain_tensors(model)
    copy_matching(plain, stored, path)
    return model
