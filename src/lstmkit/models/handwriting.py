r"""Handwriting generation (Graves 2013, "Generating Sequences With Recurrent Neural Networks", sections 4-5):
an LSTM stack that predicts the next pen offset with a mixture density output, unconditionally (the
"prediction network") or conditioned on a text through a soft attention window (the "synthesis network").

Data: offsets y_t = (dx, dy, eos) with eos = 1 at the last point of each pen stroke. The model reads
x_t = y_{t-1} (the start token (0, 0, 1) first) and scores y_t.

Output (eqs. 18-23): a Bernoulli for eos (``sigmoid(eos_logit)`` is P(eos = 1); Graves writes the same with the
opposite sign, e = 1 / (1 + exp(e_hat))) and a mixture of M bivariate Gaussians for (dx, dy):

.. math::
    \Pr(y_t) = \sum_m \pi_m \mathcal N(dx, dy \mid \mu_m, \sigma_m, \rho_m)
               \cdot \begin{cases} e & eos = 1 \\ 1 - e & eos = 0 \end{cases}

Network: L LSTM layers of H units with skip connections: every layer reads x_t, every layer after the first also
reads the layer below, and the head reads every layer's output. Synthesis (``conditional``): the first layer is an
``lstmkit.nn.LSTMCell`` stepped in Python, reading [x_t, w_{t-1}], and the window (eqs. 46-51) over the text
c_0 .. c_{U-1} (one-hot, positions counted **from 0**, so kappa = 0 sits on the first symbol):

.. math::
    (\hat\alpha, \hat\beta, \hat\kappa) = W h^1_t + b, \quad \alpha = e^{\hat\alpha},\ \beta = e^{\hat\beta},\
    \kappa_t = \kappa_{t-1} + e^{\hat\kappa} \\
    \phi(t, u) = \sum_k \alpha_k \exp(-\beta_k (\kappa_{t,k} - u)^2), \quad u = 0 .. U-1 \\
    w_t = \sum_u \phi(t, u)\, c_u

with phi zero at u >= the text's length (padding). This first layer runs as one autograd Function with a
hand-written backward (``model.window_impl = "fused"``, the default: ``_window_bptt``) or, its reference twin, the
cell and the window stepped through autograd (``"reference"``, and under torch.func transforms and tracers, and for
calls of fewer than ``WINDOW_FUSED_MIN_STEPS`` steps); the tests hold the two equal. Layers 2..L are
``lstmkit.nn.LSTM`` layers run over the whole sequence at once on [x_t, h^{l-1}_t, w_t]. Prediction (not
``conditional``): every layer is a fused ``lstmkit.nn.LSTM`` over the whole sequence. Dropout (``model.dropout``)
acts on each layer's output before the next layer and the head; the window reads the first layer's output undropped.

Initialisation: forget-gate biases 1 (``forget_bias``); the window's biases give alpha = 1/K, beta = 1 and
exp(kappa_hat) = exp(-3) ~ 0.05 symbols a step (see ``KAPPA_BIAS``); the rest is torch's default.

``HandwritingNet.attention`` gives phi (T, B, U) for plots; ``HandwritingNet.sample`` writes one sequence and stops
by Graves's rule: after the first step where phi at u = U (one past the last symbol) exceeds phi at every u < U,
compared in log space so that a window already far past the text still stops.

Shapes: T time, B batch, U text length, A alphabet, M mixtures, K window Gaussians, H hidden, L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn import LSTM, Linear, LSTMCell
from lstmkit.nn.bptt import hand_written
from lstmkit.train.config import ModelConfig, require_at_least

from ._window_bptt import window_layer

START_TOKEN = (0.0, 0.0, 1.0)  # x_0: a pen lift at the origin, so the first real point starts a stroke
RHO_LIMIT = 1.0 - 1e-6  # |rho| is clamped to this in the density only: tanh rounds to exactly 1 in float32
# The forget gates start at bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): the cells keep their contents by
# default, so gradients reach back across the hundreds of points of a line from the first updates on.
FORGET_BIAS = 1.0
# The window's kappa_hat bias: exp(-3) = 0.05 symbols per step, one symbol per ~20 points at the start, about the
# pace of handwriting sampled as in IAM-OnDB (Graves's lines: ~25 points per character). Much faster and the window
# runs off the text before the network has learnt to read it; much slower and it never reaches the text's end.
KAPPA_BIAS = -3.0
WINDOW_IMPLS = ("fused", "reference")
# Calls of fewer steps run the reference loop even under window_impl = "fused": the fused layer's fixed cost
# (laying the weights out for its products) is more than it saves on one to three steps. At the default sizes, batch
# 1, no grad (`python benchmarks/handwriting_step.py --points T`, docs/benchmarks.md, session 41): 0.643 against
# 0.509 ms at T = 1 (what `sample` and `lstmkit write` call), level at T = 3, 0.773 against 0.859 ms at T = 4.
WINDOW_FUSED_MIN_STEPS = 4


@dataclass(frozen=True)
class HandwritingModel(ModelConfig):
    """``ModelConfig`` for ``HandwritingNet``: ``hidden_size``, ``num_layers``, ``dropout`` (on each layer's
    output before the next layer and the head), ``cell`` (must be "lstm") and ``input_size`` (must be 3 when
    set: dx, dy, eos) are ModelConfig's; ``vocab_size``, ``output_size``, ``embedding_dim`` and ``tie_weights``
    have no meaning here and must stay unset. Graves 2013 used 3 layers of 400 units."""

    _no_weight_dropout = "its first layer steps a cell and the soft window one point at a time"
    _no_zoneout = _no_weight_dropout

    mixtures: int = 20  # Graves 2013: 20 bivariate Gaussians in the output
    window_mixtures: int = 10  # Graves 2013, synthesis: 10 Gaussians in the window
    conditional: bool = True  # synthesis (text-conditioned) or prediction (unconditional)
    # The windowed first layer: "fused" (one autograd.Function with a hand-written backward, models/_window_bptt.py;
    # the reference loop under torch.func transforms and tracers and for calls of 1-3 steps) or "reference" (LSTMCell
    # and the window stepped through autograd: differentiable to any order). The same values and gradients (tests).
    window_impl: str = "fused"
    # Text symbols, set by the task from its alphabet; HandwritingNet needs it when conditional (ignored otherwise).
    alphabet_size: int | None = None

    def _validate(self) -> None:
        super()._validate()
        if self.cell != "lstm":
            raise ValueError(f"the handwriting model is an LSTM; model.cell must be 'lstm', got {self.cell!r}")
        if self.input_size is not None and self.input_size != 3:
            raise ValueError(f"model.input_size must be 3 (dx, dy, eos) or unset, got {self.input_size}")
        for name in ("vocab_size", "output_size", "embedding_dim"):
            if getattr(self, name) is not None:
                raise ValueError(f"model.{name} is not used by the handwriting model; leave it unset, "
                                 f"got {getattr(self, name)}")  # fmt: skip
        if self.tie_weights:
            raise ValueError("model.tie_weights is not used by the handwriting model; it must be false")
        if self.window_impl not in WINDOW_IMPLS:
            raise ValueError(f"model.window_impl must be one of {', '.join(map(repr, WINDOW_IMPLS))}, got "
                             f"{self.window_impl!r}")  # fmt: skip
        # alphabet_size >= 1 when set; whether a conditional model has one is HandwritingNet's check, not this one:
        # the task sets it from its data after building the section, and every key's default must validate
        # (train.config.section_defaults builds the section with no arguments).
        require_at_least(self, "model", 1, "mixtures", "window_mixtures", "alphabet_size")


# -- the mixture density output ------------------------------------------------------------------
@dataclass
class MixtureParams:
    """The output distribution of one step or a sequence; leading dims (T, B) or (B,)."""

    eos_logit: Tensor  # (...)       logit of P(eos = 1)
    log_pi: Tensor  # (..., M)       log mixture weights (a log_softmax)
    mu: Tensor  # (..., M, 2)        means of (dx, dy)
    log_sigma: Tensor  # (..., M, 2) log standard deviations of (dx, dy)
    rho: Tensor  # (..., M)          correlations in (-1, 1)

    def step(self, t: int) -> MixtureParams:
        """The params at time ``t`` of a (T, B) sequence: leading dim (B,)."""
        if self.log_pi.ndim != 3:
            raise ValueError(
                f"step needs params with leading dims (T, B), got log_pi of shape {tuple(self.log_pi.shape)}"
            )
        return MixtureParams(self.eos_logit[t], self.log_pi[t], self.mu[t], self.log_sigma[t], self.rho[t])


class MixtureDensityHead(nn.Module):
    """``Linear(F -> 1 + 6M)`` split into ``MixtureParams`` (Graves eqs. 18-23): (..., F) -> leading dims (...)."""

    def __init__(self, in_features: int, mixtures: int) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("mixtures", mixtures)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        self.mixtures = mixtures
        self.linear = Linear(in_features, 1 + 6 * mixtures)  # over every point: lstmkit's panels where MKL is slower

    def forward(self, h: Tensor) -> MixtureParams:
        M = self.mixtures
        out = self.linear(h)  # (..., 1 + 6M)
        lead = out.shape[:-1]
        eos_logit, pi_hat, mu, log_sigma, rho_hat = out.split([1, M, 2 * M, 2 * M, M], dim=-1)
        return MixtureParams(
            eos_logit=eos_logit.squeeze(-1),  # (...)
            log_pi=pi_hat.log_softmax(dim=-1),  # (..., M)
            mu=mu.reshape(*lead, M, 2),  # (..., 2M) -> (..., M, 2): (dx, dy) pairs per component
            log_sigma=log_sigma.reshape(*lead, M, 2),  # (..., 2M) -> (..., M, 2)
            rho=torch.tanh(rho_hat),  # (..., M)
        )


def mixture_nll(params: MixtureParams, target: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Per-sequence negative log-likelihood in nats (B,) of offsets ``target`` (T, B, 3) under ``params`` (T, B):

    -log sum_m pi_m N(dx, dy | mu_m, sigma_m, rho_m) - log Bernoulli(eos | sigmoid(eos_logit)), summed over the
    steps where ``mask`` (T, B) bool is True (None: all). Padded steps contribute exactly 0, whatever their target
    holds (NaN included), and pass no gradient.

    In log space throughout: each component's log-density is written with the Cholesky form of the quadratic,
    (z_x - rho z_y)^2 / (1 - rho^2) + z_y^2 (a sum of non-negative terms, no cancellation near |rho| = 1), mixed by
    logsumexp, and the Bernoulli term is binary_cross_entropy_with_logits (softplus): stable for tiny sigmas and far
    targets. rho is clamped to +-(1 - 1e-6), which changes nothing unless |rho| rounds past it.
    """
    if not isinstance(target, Tensor) or not target.is_floating_point() or target.ndim != 3 or target.shape[-1] != 3:
        got = f"{target.dtype} {tuple(target.shape)}" if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"target must be float offsets (T, B, 3), got {got}")
    T, B = target.shape[:2]
    if tuple(params.log_pi.shape[:-1]) != (T, B):
        raise ValueError(f"params must have leading dims (T, B) = {(T, B)} like target, got log_pi of shape "
                         f"{tuple(params.log_pi.shape)}")  # fmt: skip
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (T, B):
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"mask must be a bool tensor of shape {(T, B)} (False = padding), got {got}")
        # Zero the padded targets first, so NaN or huge padding values cannot reach the sum or the gradients.
        target = torch.where(mask.unsqueeze(-1), target, torch.zeros((), dtype=target.dtype, device=target.device))
    xy, eos = target[..., :2], target[..., 2]  # (T, B, 2), (T, B)
    z = (xy.unsqueeze(-2) - params.mu) * torch.exp(-params.log_sigma)  # (T, B, M, 2) standardised offsets
    zx, zy = z.unbind(-1)  # each (T, B, M)
    rho = params.rho.clamp(-RHO_LIMIT, RHO_LIMIT)
    one_minus_rho2 = (1.0 - rho) * (1.0 + rho)  # 1 - rho^2 without the cancellation of 1 - rho * rho near |rho| = 1
    quad = (zx - rho * zy).square() / one_minus_rho2 + zy.square()  # (T, B, M)
    log_n = -math.log(2 * math.pi) - params.log_sigma.sum(-1) - 0.5 * torch.log(one_minus_rho2) - 0.5 * quad
    log_mix = torch.logsumexp(params.log_pi + log_n, dim=-1)  # (T, B)
    eos_nll = F.binary_cross_entropy_with_logits(params.eos_logit, eos, reduction="none")  # (T, B)
    nll = eos_nll - log_mix  # (T, B)
    if mask is not None:
        nll = torch.where(mask, nll, torch.zeros((), dtype=nll.dtype, device=nll.device))
    return nll.sum(0)  # (B,)


def _check_bias(bias: float) -> None:
    if isinstance(bias, bool) or not isinstance(bias, (int, float)):
        raise TypeError(f"bias must be a number, got {type(bias).__name__}")
    if not 0 <= bias < math.inf:
        raise ValueError(f"bias must be a finite number >= 0, got {bias}")


def biased(params: MixtureParams, bias: float) -> MixtureParams:
    """Graves 2013 eqs. 61-62, the sampling bias b >= 0: sigma -> exp(log_sigma - b), pi -> softmax(pi_hat (1 + b)).

    ``log_softmax(log_pi * (1 + b))`` equals the latter: log_pi is pi_hat less a constant per row, and a constant
    shift does not change a softmax. b = 0 returns the same values; large b samples the likeliest component's mean.
    """
    _check_bias(bias)
    return MixtureParams(
        eos_logit=params.eos_logit,
        log_pi=(params.log_pi * (1.0 + bias)).log_softmax(dim=-1),
        mu=params.mu,
        log_sigma=params.log_sigma - bias,
        rho=params.rho,
    )


def sample_offsets(params: MixtureParams, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row from the params of one step (leading dim (B,)) -> offsets (B, 3), eos as 0/1.

    Draws a component m ~ pi, then (dx, dy) = mu_m + L_m z with z ~ N(0, I) and L_m the Cholesky factor of the
    component's covariance, [[s_x, 0], [rho s_y, sqrt(1 - rho^2) s_y]], then eos ~ Bernoulli(sigmoid(eos_logit)).
    """
    if params.log_pi.ndim != 2:
        raise ValueError(f"params must be one step with leading dim (B,): log_pi (B, M), got shape "
                         f"{tuple(params.log_pi.shape)}")  # fmt: skip
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    B = params.log_pi.shape[0]
    ref = params.mu
    m = torch.multinomial(params.log_pi.exp(), 1, generator=generator)  # (B, 1) component per row
    mu = params.mu.gather(1, m.unsqueeze(-1).expand(B, 1, 2)).squeeze(1)  # (B, 1, 2) -> (B, 2)
    sigma = params.log_sigma.gather(1, m.unsqueeze(-1).expand(B, 1, 2)).squeeze(1).exp()  # (B, 1, 2) -> (B, 2)
    rho = params.rho.gather(1, m).squeeze(1)  # (B, 1) -> (B,)
    z = torch.randn(B, 2, generator=generator, dtype=ref.dtype, device=ref.device)
    dx = mu[:, 0] + sigma[:, 0] * z[:, 0]
    dy = mu[:, 1] + sigma[:, 1] * (rho * z[:, 0] + torch.sqrt((1.0 - rho) * (1.0 + rho)).clamp_min(0) * z[:, 1])
    u = torch.rand(B, generator=generator, dtype=ref.dtype, device=ref.device)
    eos = (u < torch.sigmoid(params.eos_logit)).to(ref.dtype)
    return torch.stack([dx, dy, eos], dim=-1)  # (B, 3)


# -- the network -----------------------------------------------------------------------------------
@dataclass
class HandwritingState:
    """What carries one forward call into the next (generation, truncated BPTT): the state after each sequence's
    last valid step.

    ``layers``: each layer's (h, c), each (B, H). Conditional only: ``kappa`` (B, K) the window's positions and ``w``
    (B, A) its last output (the first layer's next input).
    """

    layers: list[tuple[Tensor, Tensor]]
    kappa: Tensor | None = None
    w: Tensor | None = None

    def detach(self) -> HandwritingState:
        """The same values cut from the autograd graph (for truncated BPTT across calls)."""
        return HandwritingState(
            [(h.detach(), c.detach()) for h, c in self.layers],
            None if self.kappa is None else self.kappa.detach(),
            None if self.w is None else self.w.detach(),
        )


def _check_lengths(name: str, lengths: Tensor, B: int, maximum: int) -> Tensor:
    if not isinstance(lengths, Tensor) or lengths.dtype not in (torch.int64, torch.int32) or lengths.shape != (B,):
        got = f"{lengths.dtype} {tuple(lengths.shape)}" if isinstance(lengths, Tensor) else type(lengths).__name__
        raise ValueError(f"{name} must be an int64 tensor of shape ({B},), got {got}")
    if bool((lengths < 1).any()) or bool((lengths > maximum).any()):
        raise ValueError(f"{name} must have values in [1, {maximum}], got {lengths.tolist()}")
    return lengths.long()


class HandwritingNet(nn.Module):
    """Graves 2013's handwriting network (see the module docstring); ``config`` a ``HandwritingModel``.

    ``forward(x, text, text_lengths, state, lengths) -> (params, state)``: x (T, B, 3) the previous offsets; text
    (U, B) int64 ids (conditional only); text_lengths (B,) (None: all U); lengths (B,) valid steps of x (None: all
    T; padded steps do not change the returned state). params: ``MixtureParams`` with leading dims (T, B).
    ``attention(...)`` returns the window weights phi (T, B, U); ``sample(...)`` draws one sequence.
    """

    export_kind: ClassVar[str] = "handwriting"

    def __init__(self, config: HandwritingModel) -> None:
        super().__init__()
        if not isinstance(config, HandwritingModel):
            raise TypeError(f"config must be a HandwritingModel, got {type(config).__name__}")
        if config.conditional and config.alphabet_size is None:
            raise ValueError("model.alphabet_size is required when model.conditional is true (the task sets it from "
                             "its alphabet)")  # fmt: skip
        self.config = config
        H, L = config.hidden_size, config.num_layers
        self.conditional = config.conditional
        A = config.alphabet_size if config.conditional else 0
        self.alphabet_size = A
        K = config.window_mixtures
        self.cell: LSTMCell | None = None
        self.window: nn.Linear | None = None
        if self.conditional:
            self.cell = LSTMCell(3 + A, H, forget_bias=FORGET_BIAS)
            self.window = nn.Linear(H, 3 * K)
            with torch.no_grad():
                bias = self.window.bias.view(3, K)  # (3K,) -> rows alpha_hat, beta_hat, kappa_hat
                # alpha = 1/K each: the K Gaussians together weigh about one symbol, so w_t starts at about the
                # scale of a one-hot and does not saturate the gates it feeds; beta = 1 (width ~ one symbol).
                bias[0].fill_(-math.log(K))
                bias[1].zero_()
                bias[2].fill_(KAPPA_BIAS)
        # Layer l >= 2 reads x_t, the layer below and (conditional) w_t; the first one x_t alone when unconditional.
        sizes = ([] if self.conditional else [3]) + [3 + H + A] * (L - 1)
        self.layers = nn.ModuleList(LSTM(n, H, forget_bias=FORGET_BIAS) for n in sizes)
        self.drop = nn.Dropout(config.dropout)
        self.head = MixtureDensityHead(L * H, config.mixtures)

    # -- argument checks --
    def _check_x(self, x: Tensor) -> None:
        dtype = self.head.linear.weight.dtype
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != 3 or x.shape[0] < 1:
            got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be offsets of shape (T, B, 3) with T >= 1, got {got}")
        if x.dtype != dtype:
            raise TypeError(f"x must have the parameters' dtype {dtype}, got {x.dtype}")

    def _check_text(self, text: Tensor | None, text_lengths: Tensor | None, B: int) -> tuple[Tensor, Tensor] | None:
        """Return (text, text_lengths) checked, or None for the unconditional model."""
        if not self.conditional:
            if text is not None or text_lengths is not None:
                raise ValueError("text and text_lengths must be None: the model is unconditional "
                                 "(model.conditional = false)")  # fmt: skip
            return None
        if text is None:
            raise ValueError("text is required: the model is conditional (model.conditional = true)")
        if not isinstance(text, Tensor) or text.dtype != torch.int64:
            raise TypeError(f"text must be an int64 tensor of symbol ids, got "
                            f"{text.dtype if isinstance(text, Tensor) else type(text).__name__}")  # fmt: skip
        if text.ndim != 2 or text.shape[1] != B or text.shape[0] < 1:
            raise ValueError(f"text must have shape (U, {B}) with U >= 1, got {tuple(text.shape)}")
        U = text.shape[0]
        if text_lengths is None:
            text_lengths = torch.full((B,), U, dtype=torch.int64, device=text.device)
        text_lengths = _check_lengths("text_lengths", text_lengths, B, U)
        valid = torch.arange(U, device=text.device).unsqueeze(1) < text_lengths  # (U, B)
        bad = valid & ((text < 0) | (text >= self.alphabet_size))
        if bool(bad.any()):
            raise ValueError(f"text ids must be in [0, {self.alphabet_size}) (model.alphabet_size) at the valid "
                             f"positions, got {text[bad].tolist()}")  # fmt: skip
        return text, text_lengths

    def _check_state(self, state: HandwritingState | None, B: int, ref: Tensor) -> HandwritingState:
        """The given state after checks, or zeros."""
        H, L = self.config.hidden_size, self.config.num_layers
        K, A = self.config.window_mixtures, self.alphabet_size
        if state is None:
            zeros = ref.new_zeros(B, H)
            return HandwritingState(
                [(zeros, zeros)] * L,
                ref.new_zeros(B, K) if self.conditional else None,
                ref.new_zeros(B, A) if self.conditional else None,
            )
        if not isinstance(state, HandwritingState):
            raise TypeError(f"state must be a HandwritingState or None, got {type(state).__name__}")
        if len(state.layers) != L or any(tuple(h.shape) != (B, H) or tuple(c.shape) != (B, H) for h, c in state.layers):
            raise ValueError(f"state.layers must hold {L} pairs (h, c) of shape ({B}, {H}), got "
                             f"{[(tuple(h.shape), tuple(c.shape)) for h, c in state.layers]}")  # fmt: skip
        if self.conditional:
            for name, want in (("kappa", (B, K)), ("w", (B, A))):
                v = getattr(state, name)
                if v is None or tuple(v.shape) != want:
                    raise ValueError(f"state.{name} must have shape {want} (the model is conditional), got "
                                     f"{None if v is None else tuple(v.shape)}")  # fmt: skip
        elif state.kappa is not None or state.w is not None:
            raise ValueError("state.kappa and state.w must be None: the model is unconditional")
        return state

    # -- the window layer --
    def _window_logits(self, h1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(alpha_hat, beta, kappa increment), each (B, K), from the first layer's output h1 (B, H) (eqs. 48-51)."""
        B, K = h1.shape[0], self.config.window_mixtures
        a_hat, b_hat, k_hat = self.window(h1).view(B, 3, K).unbind(1)  # (B, 3K) -> 3 x (B, K)
        return a_hat, b_hat.exp(), k_hat.exp()

    @staticmethod
    def _log_window(a_hat: Tensor, beta: Tensor, kappa: Tensor, positions: Tensor) -> Tensor:
        """log phi (B, P) at ``positions`` (P,): log sum_k exp(alpha_hat_k - beta_k (kappa_k - u)^2), in log space so
        that a window far past the text still compares its tails (the stop rule) instead of underflowing to 0."""
        # (B, K, 1) against (P,) -> (B, K, P), reduced over K.
        return torch.logsumexp(a_hat.unsqueeze(-1) - beta.unsqueeze(-1) * (kappa.unsqueeze(-1) - positions).square(), 1)

    def _first_layer(
        self, x: Tensor, text: Tensor, text_lengths: Tensor, state: HandwritingState, valid: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, HandwritingState]:
        """The LSTMCell and the window stepped over x (T, B, 3): h1 (T, B, H) (zero at padded steps), w (T, B, A),
        phi (T, B, U) (zero at u >= text length and at padded steps) and the state after each sequence's last valid
        step (``layers`` holding the first layer's (h, c) only)."""
        T = x.shape[0]
        U = text.shape[0]
        positions = torch.arange(U, dtype=x.dtype, device=x.device)  # (U,): u = 0 .. U-1
        in_text = positions < text_lengths.unsqueeze(1)  # (B, U)
        # Padded ids may be anything (a pad id, -1): read only valid ones, and zero the padded rows of the one-hot so
        # that phi there could add nothing to w even if it were not zeroed too.
        ids = torch.where(in_text.T, text, torch.zeros((), dtype=text.dtype, device=text.device))  # (U, B)
        onehot = F.one_hot(ids.T, self.alphabet_size).to(x.dtype) * in_text.unsqueeze(-1)  # (B, U, A)
        (h, c), kappa, w = state.layers[0], state.kappa, state.w
        if self.config.window_impl == "fused" and T >= WINDOW_FUSED_MIN_STEPS and hand_written(x):
            cell = self.cell
            h1, ws, phis, (h, c, kappa, w) = window_layer(
                x, (h, c, kappa, w), (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                (self.window.weight, self.window.bias), onehot, in_text.to(x.dtype), valid)  # fmt: skip
            return h1, ws, phis, HandwritingState([(h, c)], kappa, w)
        zero = x.new_zeros(())
        hs, ws, phis = [], [], []
        for t in range(T):
            h_new, c_new = self.cell(torch.cat([x[t], w], dim=-1), (h, c))  # (B, H) each
            a_hat, beta, step = self._window_logits(h_new)
            kappa_new = kappa + step
            # alpha exp(-beta (kappa - u)^2) as one exp: (B, K, 1) against (U,) -> (B, K, U), summed over K.
            g = (a_hat.unsqueeze(-1) - beta.unsqueeze(-1) * (kappa_new.unsqueeze(-1) - positions).square()).exp()
            phi = torch.where(in_text, g.sum(1), zero)  # (B, U)
            w_new = torch.bmm(phi.unsqueeze(1), onehot).squeeze(1)  # (B, 1, U) @ (B, U, A) -> (B, A)
            if valid is None:
                h, c, kappa, w = h_new, c_new, kappa_new, w_new
                hs.append(h)
            else:
                # Past its end a sequence keeps its state; its outputs are zero, as the fused layers' are.
                v = valid[t].unsqueeze(1)  # (B, 1)
                h, c = torch.where(v, h_new, h), torch.where(v, c_new, c)
                kappa, w = torch.where(v, kappa_new, kappa), torch.where(v, w_new, w)
                hs.append(torch.where(v, h_new, zero))
                phi = torch.where(v, phi, zero)
            ws.append(w)
            phis.append(phi)
        new_state = HandwritingState([(h, c)], kappa, w)
        return torch.stack(hs), torch.stack(ws), torch.stack(phis), new_state

    def _prepare(
        self,
        x: Tensor,
        text: Tensor | None,
        text_lengths: Tensor | None,
        state: HandwritingState | None,
        lengths: Tensor | None,
    ) -> tuple[tuple[Tensor, Tensor] | None, HandwritingState, Tensor | None, Tensor | None]:
        """The checked (text, text_lengths) or None, the state (zeros when None), lengths and the valid steps (T, B)
        (None when no step is padded)."""
        self._check_x(x)
        T, B = x.shape[:2]
        checked = self._check_text(text, text_lengths, B)
        state = self._check_state(state, B, x)
        valid = None
        if lengths is not None:
            lengths = _check_lengths("lengths", lengths, B, T).to(x.device)
            if bool((lengths < T).any()):
                valid = torch.arange(T, device=x.device).unsqueeze(1) < lengths  # (T, B)
        return checked, state, lengths, valid

    def forward(
        self,
        x: Tensor,
        text: Tensor | None = None,
        text_lengths: Tensor | None = None,
        state: HandwritingState | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[MixtureParams, HandwritingState]:
        """x (T, B, 3), text (U, B), text_lengths (B,), lengths (B,) -> (params with leading dims (T, B), state)."""
        checked, state, lengths, valid = self._prepare(x, text, text_lengths, state, lengths)
        outs: list[Tensor] = []  # each layer's output (T, B, H), dropped out
        finals: list[tuple[Tensor, Tensor]] = []
        window: list[Tensor] = []  # w (T, B, A) when conditional: layers 2..L read it beside x_t and the layer below
        if self.conditional:
            h1, w, _, first = self._first_layer(x, *checked, state, valid)
            outs.append(self.drop(h1))
            finals.append(first.layers[0])
            window.append(w)
        for layer in self.layers:
            inp = torch.cat([x, outs[-1], *window], dim=-1) if outs else x  # (T, B, 3 + H + A) or (T, B, 3)
            h0, c0 = state.layers[len(finals)]
            y, (hn, cn) = layer(inp, (h0.unsqueeze(0), c0.unsqueeze(0)), lengths=lengths)  # (T, B, H), (1, B, H)
            outs.append(self.drop(y))
            finals.append((hn.squeeze(0), cn.squeeze(0)))
        params = self.head(torch.cat(outs, dim=-1))  # (T, B, L*H) -> leading dims (T, B)
        if self.conditional:
            return params, HandwritingState(finals, first.kappa, first.w)
        return params, HandwritingState(finals)

    def attention(
        self,
        x: Tensor,
        text: Tensor,
        text_lengths: Tensor | None = None,
        state: HandwritingState | None = None,
        lengths: Tensor | None = None,
    ) -> Tensor:
        """The window weights phi (T, B, U) that ``forward`` with the same arguments uses (zero at u >= a text's
        length and at padded steps), for plots and checks; runs the first layer only."""
        if not self.conditional:
            raise ValueError("attention needs a conditional model (model.conditional = true)")
        checked, state, _, valid = self._prepare(x, text, text_lengths, state, lengths)
        return self._first_layer(x, *checked, state, valid)[2]

    def _window_done(self, state: HandwritingState, positions: Tensor) -> bool:
        """Graves's stop rule for one sequence (B = 1) after a step: the window weighs u = U (one past the last
        symbol) above every u < U; ``positions`` (U + 1,) are 0 .. U. Recomputed from the state in log space."""
        a_hat, beta, _ = self._window_logits(state.layers[0][0])  # the step's own window parameters
        log_phi = self._log_window(a_hat, beta, state.kappa, positions)[0]  # (U + 1,)
        return bool(log_phi[-1] > log_phi[:-1].max())

    @torch.no_grad()
    def sample(
        self,
        text: Tensor | None = None,
        *,
        max_steps: int = 1000,
        bias: float = 0.0,
        generator: torch.Generator | None = None,
        prime: Tensor | None = None,
    ) -> Tensor:
        """Draw one sequence of offsets (N, 3) float32 (eos as 0/1), step by step from the start token (0, 0, 1),
        carrying the state; ``bias`` as in ``biased``. Runs with dropout off (eval mode; the training flag is
        restored after).

        Conditional: ``text`` (U,) int64 ids; stops after the first step where the window weighs the position one
        past the last symbol (u = U) above every symbol's (u < U) (Graves 2013, section 5.2), or at ``max_steps``.
        Unconditional: ``text`` None, exactly ``max_steps`` steps.

        ``prime`` (P, 3): offsets read first, as if the network had written them (Graves 2013, section 5.3: primed
        sampling, which carries a writer's style into what follows); only the points after them are returned.
        Conditional, ``text`` must then begin with the prime's own text, so that the window reads through it
        before it reaches the new words.
        """
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
        _check_bias(bias)  # before any step runs
        ref = self.head.linear.weight
        text_b = lengths_b = positions = None
        if self.conditional:
            if not isinstance(text, Tensor) or text.ndim != 1 or text.numel() < 1:
                got = f"shape {tuple(text.shape)}" if isinstance(text, Tensor) else type(text).__name__
                raise ValueError(f"text must be a 1-D tensor (U,) of symbol ids with U >= 1, got {got}")
            text_b = text.unsqueeze(1)  # (U,) -> (U, 1)
            positions = torch.arange(text.numel() + 1, dtype=ref.dtype, device=ref.device)  # (U + 1,): u = 0 .. U
            lengths_b = torch.tensor([text.numel()], device=text.device)
        elif text is not None:
            raise ValueError("text must be None: the model is unconditional (model.conditional = false)")
        x = ref.new_tensor(START_TOKEN).view(1, 1, 3)
        if prime is not None:
            if not isinstance(prime, Tensor) or prime.ndim != 2 or prime.shape[1] != 3 or len(prime) < 1:
                got = f"shape {tuple(prime.shape)}" if isinstance(prime, Tensor) else type(prime).__name__
                raise ValueError(f"prime must be a tensor of offsets (P, 3) with P >= 1, got {got}")
            x = torch.cat([x, prime.to(ref).unsqueeze(1)])  # (P + 1, 1, 3): the start token, then the prime
        was_training = self.training
        self.eval()
        try:
            state = None
            out = []
            for _ in range(max_steps):
                params, state = self(x, text_b, lengths_b, state)
                y = sample_offsets(biased(params.step(-1), bias), generator)  # (1, 3): after the last input
                out.append(y[0])
                if self.conditional and self._window_done(state, positions):
                    break
                x = y.view(1, 1, 3)
        finally:
            self.train(was_training)
        return torch.stack(out).float()  # (N, 3)
