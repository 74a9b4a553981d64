"""Block-circulant weight matrices (CirCNN, Ding et al. 2017), with FFT-based products.

A matrix W (p K, q K) is block-circulant with block size K when each of its p x q blocks
C_ij (K, K) is circulant: defined by one length-K vector v_ij (its first column),

.. math::
    (C_{ij})_{rc} = v_{ij}[(r - c) \\bmod K], \\qquad
    C_{ij} x_j = v_{ij} \\circledast x_j = \\mathrm{IFFT}(\\mathrm{FFT}(v_{ij}) \\odot \\mathrm{FFT}(x_j))

so W holds p q K numbers instead of p q K^2 (K times fewer), and y = W x (x (..., q K) -> y (..., p K))
is y_i = IFFT(sum_j FFT(v_ij) * FFT(x_j)): O(p q K log K)-ish work in place of O(p q K^2)
(:func:`circulant_matmul`, ``torch.fft.rfft``/``irfft``).

**Projection.** The nearest block-circulant matrix to W in the Frobenius norm has, in each block,
the mean of the block's entries along each wrapped diagonal {(r, c): (r - c) mod K = k}
(:func:`project`): the circulant matrices are a linear subspace, and the K wrapped diagonals are an
orthogonal basis of it whose elements have K ones each. A block-circulant W is projected to itself.

**In a model.** :func:`circulant_model` puts a :class:`BlockCirculant` parametrization on every
gate matrix (``weight_ih_l{k}``, ``weight_hh_l{k}`` of every ``lstmkit.nn`` LSTM, GRU and RNN
layer; each size must be a multiple of K) and, with ``others=True``, on every other matrix both of
whose sizes are multiples of K (the projection ``weight_hr``, ``Linear`` heads not tied to an
embedding). Its trainable parameter is the (p, q, K) tensor of vectors. What a read of the weight
returns depends on the parametrization's ``product``:

- ``"dense"`` (the default): the (p K, q K) matrix, expanded from the vectors by indexing, so the
  layer runs its usual kernel (the C++ scan). Storage shrinks K times; a forward call pays one
  expansion per matrix and then runs at the dense model's speed.
- ``"fft"``: a :class:`CirculantMatrix`, a tensor that holds only the vectors and computes
  ``F.linear(x, W)`` as :func:`circulant_matmul`. LSTM layers switch to their reference time
  loop (``impl="reference"``, whose every step calls ``F.linear``; GRU and RNN always use it), and
  heads compute through it too. No dense copy exists unless another operation reads the matrix.

Which is faster depends on the sizes: see docs/compression.md and ``benchmarks/circulant.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils._pytree import tree_map

from lstmkit import _rounding
from lstmkit.formats.integrity import copy_matching, save_tensors_file
from lstmkit.formats.lowrank import gate_matrices
from lstmkit.formats.sparse import unique_tensors
from lstmkit.nn import LSTM

FORMAT = "lstmkit.circulant"
PRODUCTS = ("dense", "fft")
_V = ".__circulant"


def check_block(block: int) -> int:
    if isinstance(block, bool) or not isinstance(block, int) or block < 2:
        raise ValueError(f"block must be an integer >= 2 (the K of the K x K circulant blocks), got {block!r}")
    return block


def check_product(product: str) -> str:
    if product not in PRODUCTS:
        raise ValueError(f"product must be one of {PRODUCTS}, got {product!r}")
    return product


def _wrapped(K: int, device: torch.device | None = None) -> Tensor:
    """(K, K) long: entry [r, c] = (r - c) mod K, the index into v of a circulant block's entry (r, c)."""
    r = torch.arange(K, device=device)
    return (r[:, None] - r[None, :]) % K


def expand(vectors: Tensor) -> Tensor:
    """The block-circulant matrix (p K, q K) of ``vectors`` (p, q, K), block (i, j)[r, c] = v_ij[(r - c) mod K]."""
    p, q, K = vectors.shape
    blocks = vectors[:, :, _wrapped(K, vectors.device)]  # (p, q, K, K): [i, j, r, c]
    return blocks.permute(0, 2, 1, 3).reshape(p * K, q * K)  # (p, K, q, K) -> (pK, qK)


def project(w: Tensor, block: int) -> Tensor:
    """The vectors (p, q, K) of the block-circulant matrix nearest to ``w`` (p K, q K) in the
    Frobenius norm: each block's mean along each wrapped diagonal."""
    K = check_block(block)
    rows, cols = w.shape
    if rows % K or cols % K:
        raise ValueError(f"block={K} must divide both sizes of the matrix, got shape {(rows, cols)}")
    blocks = w.detach().reshape(rows // K, K, cols // K, K).permute(0, 2, 1, 3)  # (p, q, K, K): [i, j, r, c]
    r = torch.arange(K, device=w.device)
    c = (r[None, :] - r[:, None]) % K  # [k, r] = (r - k) mod K: the column of diagonal k in row r
    return blocks[:, :, r[None, :].expand(K, K), c].mean(-1)  # (p, q, K, K) [k, r] -> (p, q, K)


def circulant_matmul(x: Tensor, vectors: Tensor) -> Tensor:
    """y = W x for the block-circulant W of ``vectors`` (p, q, K), through the FFT: x (..., q K) -> y (..., p K).

    y_i = irfft(sum_j rfft(v_ij) * rfft(x_j)); the sum over j is one batched complex matrix product
    per frequency.
    """
    p, q, K = vectors.shape
    if x.shape[-1] != q * K:
        raise ValueError(f"x must have {q * K} features (the matrix's columns), got shape {tuple(x.shape)}")
    lead = x.shape[:-1]
    xs = torch.fft.rfft(x.reshape(-1, q, K), dim=-1)  # (N, q, F), F = K // 2 + 1
    vs = torch.fft.rfft(vectors, dim=-1)  # (p, q, F)
    ys = torch.matmul(xs.permute(2, 0, 1), vs.permute(2, 1, 0))  # (F, N, q) @ (F, q, p) -> (F, N, p)
    y = torch.fft.irfft(ys.permute(1, 2, 0), n=K, dim=-1)  # (N, p, K)
    return y.reshape(*lead, p * K)


def fft_terms(K: int) -> int:
    """L: the depth of the FFT of length K in butterflies, for the rounding bound. Radix-2 lengths
    take log2 K; other lengths get 3 ceil(log2 2K) + 2, which covers Bluestein's algorithm (three
    FFTs of a power-of-two length m >= 2K - 1 and two products by chirps) and mixed radices."""
    if K & (K - 1) == 0:
        return max(1, int(math.log2(K)))
    return 3 * math.ceil(math.log2(2 * K)) + 2


def product_error_bound(vectors: Tensor, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """A bound (..., p K) on |fl(circulant_matmul(x, v)) - W x| in ``dtype``, per output entry.

    First-order forward error analysis (Higham, *Accuracy and Stability of Numerical Algorithms*,
    2nd ed., Thm 24.2 for the FFT): a computed FFT of length K is within L eta ||.||_2 of the
    exact one, eta = mu + gamma_4 (sqrt 2 + mu), mu = u the error of the twiddle factors, L =
    :func:`fft_terms` (+1 for the real-input packing of rfft/irfft). With sigma_ij = ||C_ij||_2 =
    max_f |FFT(v_ij)(f)| (a circulant's eigenvalues), per output block i:

        ||e_i||_2 <= (2 (L + 1) eta + sqrt(2) gamma_2 + gamma_q + u) S_i + (L + 1) eta T_i,
        S_i = sum_j sigma_ij ||x_j||_2,   T_i = sum_j ||v_ij||_2 ||x_j||_1

    (the FFTs of x_j and of the result, the products and the sum over the q blocks; then the
    FFT of v_ij, whose error meets |FFT(x_j)| <= ||x_j||_1). An entry's error is at most its
    block's 2-norm error. gamma_n is ``_rounding.gamma`` (the probabilistic form, as everywhere in
    lstmkit). The bound grows like log2 K and with the sizes through the norms.
    """
    p, q, K = vectors.shape
    u = _rounding.unit_roundoff(dtype)
    L = fft_terms(K) + 1
    eta = u + _rounding.gamma(4, u) * (math.sqrt(2) + u)
    v = vectors.detach().double()
    xs = x.detach().double().reshape(-1, q, K)  # (N, q, K)
    sigma = torch.fft.rfft(v, dim=-1).abs().amax(-1)  # (p, q)
    S = xs.norm(dim=-1) @ sigma.T  # (N, p)
    T = xs.abs().sum(-1) @ v.norm(dim=-1).T  # (N, p)
    c = 2 * L * eta + math.sqrt(2) * _rounding.gamma(2, u) + _rounding.gamma(q, u) + u
    block = c * S + L * eta * T  # (N, p)
    return block.repeat_interleave(K, -1).reshape(*x.shape[:-1], p * K)


def dense_error_bound(w: Tensor, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """|fl(x @ W^T) - x @ W^T| <= gamma_n sum_c |W_rc| |x_c| per output entry (n = W's columns)."""
    u = _rounding.unit_roundoff(dtype)
    return _rounding.gamma(w.shape[1], u) * (x.detach().double().abs() @ w.detach().double().abs().T)


# -- a tensor that multiplies through the FFT ----------------------------------------------------------------
_METADATA = {torch.Tensor.shape.__get__, torch.Tensor.dtype.__get__, torch.Tensor.ndim.__get__, torch.Tensor.size,
             torch.Tensor.dim, torch.Tensor.requires_grad.__get__}  # fmt: skip


class CirculantMatrix(torch.Tensor):
    """A block-circulant matrix (p K, q K) that holds only its vectors (p, q, K).

    ``F.linear(x, W, b)`` runs :func:`circulant_matmul` (differentiable through the vectors);
    asking for the shape or dtype reads no data; any other operation expands the dense matrix once
    (kept for the tensor's life, which is one forward call) and runs on it. Its storage is a
    ``meta`` tensor of the right shape: no memory.
    """

    _vectors: Tensor
    _dense: Tensor | None

    @staticmethod
    def __new__(cls, vectors: Tensor) -> CirculantMatrix:
        p, q, K = vectors.shape
        r = torch.Tensor._make_subclass(cls, torch.empty(p * K, q * K, dtype=vectors.dtype, device="meta"))
        r._vectors, r._dense = vectors, None
        return r

    def dense(self) -> Tensor:
        if self._dense is None:
            self._dense = expand(self._vectors)
        return self._dense

    @classmethod
    def __torch_function__(cls, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and isinstance(args[1], CirculantMatrix) and not isinstance(args[0], CirculantMatrix):
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            y = circulant_matmul(args[0], args[1]._vectors)
            return y if bias is None else y + bias
        if func in _METADATA:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        args, kwargs = tree_map(lambda t: t.dense() if isinstance(t, CirculantMatrix) else t, (args, kwargs))
        return func(*args, **kwargs)


class BlockCirculant(nn.Module):
    """A parametrization holding trainable vectors (p, q, K); the weight is their block-circulant
    matrix (p K, q K), dense or as a :class:`CirculantMatrix` (``product``)."""

    def __init__(self, vectors: Tensor, product: str = "dense") -> None:
        super().__init__()
        self.vectors = nn.Parameter(vectors.contiguous())
        self.product = check_product(product)

    @property
    def block(self) -> int:
        return self.vectors.shape[2]

    def forward(self, original: Tensor) -> Tensor:
        if self.product == "fft":
            return CirculantMatrix(self.vectors)
        return expand(self.vectors)

    def extra_repr(self) -> str:
        p, q, K = self.vectors.shape
        return f"block={K}, shape=({p * K}, {q * K}), product={self.product!r}"


# -- a model ------------------------------------------------------------------------------------------------
def _matrices(model: nn.Module) -> tuple[list[str], list[str]]:
    """(gate matrices, other matrices): names of the gate matrices of every lstmkit recurrent layer,
    and of the other weights that are products (``weight_hr``, ``Linear``), each once; a weight
    tied to an ``Embedding`` is not a candidate (a lookup table, not a product)."""
    gates = gate_matrices(model)
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    others = []
    for mname, module in model.named_modules():
        for attr, p in module.named_parameters(recurse=False):
            name = f"{mname}.{attr}" if mname else attr
            product = (isinstance(module, nn.Linear) and attr == "weight") or attr.startswith("weight_hr_l")
            if product and name not in gates and id(p) not in embedded and p.ndim == 2:
                others.append(name)
    return gates, others


def divisors_fitting(model: nn.Module) -> list[int]:
    """The block sizes K >= 2 that divide both sizes of every gate matrix of ``model``."""
    params = dict(model.named_parameters())
    gates, _ = _matrices(model)
    g = 0
    for name in gates:
        g = math.gcd(g, *params[name].shape)
    return [k for k in range(2, g + 1) if g % k == 0]


def check_fits(model: nn.Module, block: int) -> None:
    """Raise ``ValueError`` unless ``block`` divides both sizes of every gate matrix, naming the
    first that it does not and the block sizes that would fit."""
    check_block(block)
    params = dict(model.named_parameters())
    gates, _ = _matrices(model)
    if not gates:
        raise ValueError("the model has no lstmkit LSTM/GRU/RNN gate matrices to make block-circulant")
    for name in gates:
        shape = tuple(params[name].shape)
        bad = [n for n in shape if n % block]
        if bad:
            fits = divisors_fitting(model)
            hint = f"block sizes that fit this model: {', '.join(map(str, fits))}" if fits else \
                "no block size >= 2 divides all its gate matrices"  # fmt: skip
            raise ValueError(f"block={block} (--block) must divide both sizes of every gate matrix (K x K "
                             f"circulant blocks); {name} is {shape}: {bad[0]} is not a multiple of {block}. "
                             f"{hint[0].upper()}{hint[1:]}")  # fmt: skip


def _attach(model: nn.Module, vectors: dict[str, Tensor], product: str) -> None:
    modules = dict(model.named_modules())
    for name, v in vectors.items():
        mname, _, attr = name.rpartition(".")
        module = modules[mname]
        p = getattr(module, attr)
        if v.ndim != 3 or (v.shape[0] * v.shape[2], v.shape[1] * v.shape[2]) != tuple(p.shape):
            raise ValueError(f"{name}: circulant vectors of shape {tuple(v.shape)} do not make the model's "
                             f"{tuple(p.shape)}")  # fmt: skip
        parametrize.register_parametrization(module, attr, BlockCirculant(v.to(p.dtype)), unsafe=True)
        module.parametrizations[attr].original = nn.Parameter(p.new_empty(0), requires_grad=False)
    set_product(model, product)


def circulant_model(model: nn.Module, block: int, *, others: bool = True, product: str = "dense") -> dict[str, Any]:
    """Replace the gate matrices of ``model`` (and, with ``others``, every other product matrix both
    of whose sizes are multiples of ``block``) by their nearest block-circulant matrices, in place.

    Returns ``{"circulant": {name: [p, q, K]}, "dense": {name: reason}}``. Raises ``ValueError``
    (naming ``block``) when ``block`` does not divide a gate matrix's sizes.
    """
    check_product(product)
    if is_circulant(model):
        raise ValueError("the model is block-circulant already")
    check_fits(model, block)
    params = dict(model.named_parameters())
    gates, rest = _matrices(model)
    chosen, dense = list(gates), {}
    for name in rest:
        shape = tuple(params[name].shape)
        if not others:
            dense[name] = "left dense (others=False)"
        elif any(n % block for n in shape):
            dense[name] = f"left dense: its shape {shape} is not a multiple of {block}"
        else:
            chosen.append(name)
    vectors = {name: project(params[name], block) for name in chosen}
    _attach(model, vectors, product)
    return {"circulant": {n: list(v.shape) for n, v in vectors.items()}, "dense": dense}


def circulant_parts(model: nn.Module) -> dict[str, BlockCirculant]:
    out = {}
    for mname, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for attr, plist in module.parametrizations.items():
                if isinstance(plist[0], BlockCirculant):
                    out[f"{mname}.{attr}" if mname else attr] = plist[0]
    return out


def is_circulant(model: nn.Module) -> bool:
    return any(isinstance(m, BlockCirculant) for m in model.modules())


def set_product(model: nn.Module, product: str) -> None:
    """Make every block-circulant weight of ``model`` multiply ``"dense"`` (expanded matrix, the
    layers' own kernels) or through the ``"fft"`` (:class:`CirculantMatrix`; LSTM layers holding
    one switch to their reference time loop, and back to the kernel they had for ``"dense"``)."""
    check_product(product)
    for module in model.modules():
        parts = [p[0] for p in module.parametrizations.values()] if parametrize.is_parametrized(module) else []
        parts = [p for p in parts if isinstance(p, BlockCirculant)]
        for part in parts:
            part.product = product
        if parts and isinstance(module, LSTM):
            if product == "fft" and module.impl != "reference":
                module._impl_before_fft = module.impl
                module.impl = "reference"
            elif product == "dense" and hasattr(module, "_impl_before_fft"):
                module.impl = module.__dict__.pop("_impl_before_fft")


def _plain_tensors(model: nn.Module) -> dict[str, Tensor]:
    return {n: t.detach() for n, t in model.state_dict().items() if "parametrizations." not in n}


def save_circulant(model: nn.Module, path: str | Path) -> int:
    """Write a block-circulant model: the vectors (p, q, K) of each circulant matrix, the rest as it
    is, and the product in use (sealed, atomic). Returns the file's bytes."""
    parts = circulant_parts(model)
    if not parts:
        raise ValueError("the model has no block-circulant weights (circulant_model first)")
    out = {name + _V: part.vectors.detach().contiguous() for name, part in parts.items()}
    plain, alias = unique_tensors(_plain_tensors(model))  # tied weights once, as safetensors' save_model
    out.update({n: t.contiguous() for n, t in plain.items()})
    products = {part.product for part in parts.values()}
    meta = {"format": FORMAT, "blocks": json.dumps({n: p.block for n, p in parts.items()}),
            "product": products.pop() if len(products) == 1 else "dense", "aliases": json.dumps(alias)}  # fmt: skip
    save_tensors_file(out, path, metadata=meta)
    return Path(path).stat().st_size


def load_circulant(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a file written by :func:`save_circulant` into ``model`` built (dense) from the same config,
    multiplying as the file says (``product`` metadata)."""
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a block-circulant lstmkit model (metadata format {meta.get('format')!r})")
        stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    blocks = json.loads(meta["blocks"])
    vectors = {}
    for name, K in blocks.items():
        v = stored.pop(name + _V, None)
        if v is None:
            raise ValueError(f"{path}: the circulant vectors of {name} are missing")
        if v.ndim != 3 or v.shape[2] != K:
            raise ValueError(f"{path}: {name} must hold vectors (p, q, {K}), got shape {tuple(v.shape)}")
        vectors[name] = v
    params = dict(model.named_parameters())
    unknown = [n for n in vectors if n not in params]
    if unknown:
        raise ValueError(f"{path} holds circulant vectors of tensors the model does not have: {unknown}")
    _attach(model, vectors, check_product(meta.get("product", "dense")))
    plain = _plain_tensors(model)
    for name, target in json.loads(meta.get("aliases", "{}")).items():
        if target in stored:
            stored[name] = stored[target]
    copy_matching(plain, stored, path)
    return model


__all__ = ["FORMAT", "PRODUCTS", "BlockCirculant", "CirculantMatrix", "check_block", "check_fits",
           "circulant_matmul", "circulant_model", "circulant_parts", "dense_error_bound", "divisors_fitting",
           "expand", "fft_terms", "is_circulant", "load_circulant", "product_error_bound", "project",
           "save_circulant", "set_product"]  # fmt: skip
