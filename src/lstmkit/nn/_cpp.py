"""The fused LSTM recurrence with its time loops in C++ (``csrc/lstm_scan.cpp``), built on first use.

``lstm_scan_cpp`` has exactly ``_fused.lstm_scan``'s signature, semantics and saved state; the
Python kernel stays the readable spec and the tests hold the two equal (values and every
gradient). Per step the C++ forward does one matrix product (oneDNN's brgemm micro-kernel, each
thread on its own slice of hidden units) and one vectorised pass for all the gate math; the
backward one pass and one product, the weight gradients after the loop (BLAS; on AMD's AVX-512 CPUs, where MKL's
sgemm runs at half their speed, brgemm on panels, as for a training step's input side: ``whole_linear``).

The extension is compiled by ``torch.utils.cpp_extension.load`` (needs a C++ compiler and ninja)
into ``$LSTMKIT_CACHE_DIR`` (default ``~/.cache/lstmkit``), in a folder keyed by everything that
changes the binary (``build_key``: torch's version and install path, the Python ABI, the compiler's
path and version, the flags and the sources), so later processes of the same environment reuse the
build and other environments get their own. The first build (30-60 s) says so once on stderr. A file
lock in the cache root serialises builds; each builds into a temporary folder renamed into place
when complete, so a process only ever loads a finished build. ``available()`` says whether the
kernel can be used; set ``LSTMKIT_NO_CPP=1`` to turn it off.

The float32 kernels exist once per instruction set (AVX-512, AVX2+FMA, portable ``generic``) and the
best one this CPU runs is chosen at load. ``LSTMKIT_CPU_ISA=generic|avx2|avx512`` forces one (to test
every path on one machine); a path the CPU cannot run, or an unknown name, is refused with a
``RuntimeError`` at first use. ``supported_isas()`` lists what this CPU runs. float64 always runs
the portable kernels. The default path's numbers do not depend on the variable being unset or set
to the best path.

CPU only, float32 and float64 (``SUPPORTED_DTYPES``): callers route other devices and dtypes to
``_fused.lstm_scan``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode

from ._fused import (
    N_DIFFERENTIABLE,
    N_RECURRENT,
    N_SCAN_ARGS,
    GateSource,
    ScanArgs,
    keep_for_second_order,
    recurrent_of,
    scan_args,
    second_order_grads,
)
from .weights import LSTMOptions, LSTMWeights

logger = logging.getLogger(__name__)

SUPPORTED_DTYPES = (torch.float32, torch.float64)

_CSRC = Path(__file__).with_name("csrc")
_SOURCES = ("lstm_scan.cpp",)
_HEADERS = ("lstm_scan_pointwise.h", "winograd_transforms.h")
# No -march=native: the build must run on any x86-64 machine (CI differs from dev boxes). The
# kernels are compiled for several instruction sets in one build and chosen at run time instead.
# -fopenmp: at::parallel_for is inline OpenMP code in the torch headers. -fno-trapping-math and
# -fno-math-errno (as torch itself is built) let GCC if-convert and vectorise the gate loops; they do
# not change any result.
_CFLAGS = ("-O3", "-fopenmp", "-fno-trapping-math", "-fno-math-errno")
_LDFLAGS = ("-fopenmp",)

ISAS = ("generic", "avx2", "avx512")  # the float32 kernels' instruction-set paths, in the order the CPU adds them

_lock = threading.Lock()
_module: ModuleType | None = None
_failure: str | None = None  # why the extension cannot be used, once known
_isa_error: str | None = None  # LSTMKIT_CPU_ISA names a path this CPU cannot run
_best_isa = "generic"  # what the extension chose for this CPU before any LSTMKIT_CPU_ISA
built_here = False  # whether this process compiled the extension (False: it loaded a finished build)


def _cache_root() -> Path:
    if os.environ.get("LSTMKIT_CACHE_DIR"):
        return Path(os.environ["LSTMKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = Path(base) / "lstmkit"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home (some CI runners): build in the temp folder instead of failing
        user = os.getuid() if hasattr(os, "getuid") else "user"
        root = Path(tempfile.gettempdir()) / f"lstmkit-cache-{user}"
    return root


def _compiler() -> tuple[str, str]:
    """The C++ compiler's resolved path and its ``--version`` line, or raise if there is none."""
    cxx = os.environ.get("CXX", "c++")
    path = shutil.which(cxx)
    if path is None:
        raise RuntimeError(f"no C++ compiler found (looked for {cxx!r}; set CXX)")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        version = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
    except (OSError, subprocess.SubprocessError) as e:
        version = f"unknown ({type(e).__name__})"
    return os.path.realpath(path), version


def _source_key() -> str:
    """Hash of the sources and flags: the extension's module name (its PyInit symbol)."""
    h = hashlib.sha256()
    for name in _SOURCES + _HEADERS:
        h.update(name.encode())
        h.update((_CSRC / name).read_bytes())
    h.update(" ".join(_CFLAGS + _LDFLAGS).encode())
    return h.hexdigest()[:16]


def build_key() -> dict[str, str]:
    """Everything that changes the binary; ``build_directory`` hashes it.

    Two virtual environments with the same torch version but different installs (or compilers) get
    different folders: a build links against the torch it was compiled with.
    """
    compiler, compiler_version = _compiler()
    return {
        "torch": torch.__version__,
        "torch_path": os.path.realpath(os.path.dirname(torch.__file__)),
        "python": f"{sys.implementation.cache_tag} {sysconfig.get_config_var('EXT_SUFFIX')}",
        "compiler": compiler,
        "compiler_version": compiler_version,
        "sources": _source_key(),
    }


def build_directory(key: dict[str, str] | None = None) -> Path:
    """Where the extension is (or would be) built for ``key`` (default: this process's ``build_key()``)."""
    key = build_key() if key is None else key
    digest = hashlib.sha256("\n".join(f"{k}={v}" for k, v in sorted(key.items())).encode()).hexdigest()[:16]
    return _cache_root() / "cpp" / f"torch-{key['torch']}-{sys.implementation.cache_tag}-{digest}"


def _module_name() -> str:
    return f"lstmkit_scan_{_source_key()}"


def _import_built(build_dir: Path) -> ModuleType:
    """Import the finished extension in ``build_dir`` (no compiler involved)."""
    name = _module_name()
    path = build_dir / f"{name}.so"  # cpp_extension's file name for the module
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compile(tmp_dir: Path) -> ModuleType:
    from torch.utils import cpp_extension

    # cpp_extension may warn (compiler version checks); keep those out of the caller's warning
    # filters (tests turn warnings into errors) and in the log instead.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = cpp_extension.load(
            name=_module_name(),
            sources=[str(_CSRC / name) for name in _SOURCES],
            extra_cflags=list(_CFLAGS),  # copies: load() appends to the lists it is given
            extra_ldflags=list(_LDFLAGS),
            build_directory=str(tmp_dir),
            verbose=False,
        )
    for w in caught:
        logger.debug("building the C++ LSTM kernel: %s", w.message)
    return module


def _build() -> ModuleType:
    """Load the finished build for this environment, compiling it first (under the lock) if there is none."""
    global built_here
    from torch.utils import cpp_extension

    build_dir = build_directory()
    done = build_dir / f"{_module_name()}.so"
    if done.exists():  # the folder only appears, by rename, once the build in it is complete
        return _import_built(build_dir)
    if not cpp_extension.is_ninja_available():
        raise RuntimeError("ninja is not installed (pip install ninja)")
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent.parent / ".build.lock", "a+") as lock_file:
        try:
            import fcntl

            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)  # released when the file closes
        except ImportError:  # no fcntl (Windows): builds are not serialised there
            pass
        if done.exists():  # another process built it while this one waited for the lock
            return _import_built(build_dir)
        for stale in build_dir.parent.glob(f".{build_dir.name}.tmp-*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp_dir = build_dir.parent / f".{build_dir.name}.tmp-{os.getpid()}"
        tmp_dir.mkdir()
        print(f"lstmkit: compiling the C++ LSTM kernel (once for this environment, 30-60 s) into {build_dir} ...",
              file=sys.stderr, flush=True)
        try:
            module = _compile(tmp_dir)
            os.rename(tmp_dir, build_dir)  # atomic: other processes see no folder or a finished one
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        built_here = True
        return module


def supported_isas() -> tuple[str, ...]:
    """The instruction-set paths of the float32 kernels this CPU can run (builds the extension)."""
    if not available():
        return ()
    return ISAS[: ISAS.index(_best_isa) + 1]


def _apply_forced_isa(module: ModuleType) -> str | None:
    """Select ``LSTMKIT_CPU_ISA``'s path, if set; return why it cannot be, or None."""
    forced = os.environ.get("LSTMKIT_CPU_ISA", "").strip().lower()
    if not forced:
        return None
    runs = ", ".join(ISAS[: ISAS.index(_best_isa) + 1])
    if forced not in ISAS:
        return f"LSTMKIT_CPU_ISA={forced!r} is not one of {', '.join(ISAS)} (this CPU runs {runs})"
    try:
        module.set_isa(forced)
    except RuntimeError:
        return f"LSTMKIT_CPU_ISA={forced!r}: this CPU cannot run the {forced} kernels (it runs {runs}); unset it"
    return None


# Dynamo calls it while tracing and keeps the answer, instead of tracing the build (file system,
# hashing, a lock: graph breaks) when a compiled model is the first thing to use the kernel.
@torch.compiler.assume_constant_result
def available() -> bool:
    """Whether ``lstm_scan_cpp`` can run here; builds the extension on the first call.

    When it cannot be used (``LSTMKIT_NO_CPP`` set, no compiler or ninja, a failed build) it returns
    False and logs the reason once. Raises RuntimeError only for a ``LSTMKIT_CPU_ISA`` this CPU
    cannot run (a setting to fix, not a reason to fall back quietly).
    """
    global _module, _failure, _isa_error, _best_isa
    if _isa_error is not None:
        raise RuntimeError(_isa_error)
    if _module is not None:
        return True
    if _failure is not None:
        return False
    with _lock:
        if _module is not None or _failure is not None:
            return _module is not None
        if os.environ.get("LSTMKIT_NO_CPP", "").strip() not in ("", "0"):
            _failure = "disabled by LSTMKIT_NO_CPP"
            logger.info("lstmkit C++ LSTM kernel %s; using the PyTorch kernel", _failure)
            return False
        try:
            module = _build()
        except Exception as e:  # any failure means "use the PyTorch kernel", never a crash
            _failure = f"{type(e).__name__}: {e}"
            logger.warning("lstmkit C++ LSTM kernel unavailable, using the PyTorch kernel: %s", _failure)
            return False
        _best_isa = module.isa()
        _isa_error = _apply_forced_isa(module)
        if _isa_error is not None:
            raise RuntimeError(_isa_error)
        _module = module
        logger.debug("lstmkit C++ LSTM kernel loaded from %s (%s kernels)", build_directory(), _module.isa())
        return True


def _ext() -> ModuleType:
    if not available():
        raise RuntimeError(f"the lstmkit C++ LSTM kernel is unavailable: {_failure}")
    assert _module is not None
    return _module


class LSTMScanCpp(torch.autograd.Function):
    """Autograd node whose forward and backward are the C++ time loops (eager mode); inputs: a ScanArgs, then
    a GateSource. A backward with grad mode on (``create_graph=True``) is ``_fused.second_order_grads``."""

    @staticmethod
    def forward(ctx, *inputs):  # a ScanArgs, then a GateSource, splatted
        a = ScanArgs(*inputs[:N_SCAN_ARGS])
        out = _ext().forward(*a, True, None, None)  # keep what the backward needs; no in-kernel LN_ih
        ys, hn, cn = out[:3]
        ctx.coupled, ctx.eps = a.coupled, a.eps
        ctx.n_saved = len(out) - 3
        ctx.save_for_backward(*out[3:], *recurrent_of(a), *keep_for_second_order(a, GateSource(*inputs[N_SCAN_ARGS:])))
        return ys, hn, cn

    @staticmethod
    def backward(ctx, dy, dhn, dcn):
        tensors = ctx.saved_tensors
        saved = list(tensors[: ctx.n_saved])
        recurrent = tensors[ctx.n_saved : ctx.n_saved + N_RECURRENT]
        need = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: gradients that can be differentiated again
            kept = tensors[ctx.n_saved + N_RECURRENT :]
            return second_order_grads(kept, recurrent, ctx.coupled, ctx.eps, (dy, dhn, dcn), need)
        # Outputs autograd never reached come back as None; the kernel treats those as zero.
        grads = _ext().backward(
            dy, dhn, dcn, saved, *recurrent, ctx.coupled, need[3] or need[4], any(need[5:9]),
        )
        grads = [g if n else None for g, n in zip(grads, need[:N_DIFFERENTIABLE], strict=True)]
        return (*grads, *[None] * (N_SCAN_ARGS - N_DIFFERENTIABLE + len(GateSource._fields)))


# --- the scan as torch.library custom ops ---------------------------------------------------------
# Under torch.compile, torch.export, torch.jit.trace and any other tracer (a dispatch mode: fake
# tensors, functionalisation) the scan is one opaque operator per layer and direction,
# ``lstmkit::lstm_scan``, with a fake implementation for shapes and an autograd formula that calls
# ``lstmkit::lstm_scan_backward``. Both call the C++ forward and backward with exactly the arguments
# LSTMScanCpp passes. Eager mode keeps LSTMScanCpp: a Python custom op costs a few hundred
# microseconds a call in dispatch, as much as a whole short sequence. An op returns a fixed tuple of
# tensors: a tensor the kernel leaves undefined (a saved tensor of an absent variant, a gradient not
# asked for, everything saved at inference) is an empty tensor in the op and None again before the
# next C++ call.

N_SAVED = 10  # acts, cs, tcs, hin, hraw, rhat, rrstd, chat, crstd, craw: what the C++ forward keeps for the backward


def _empty_like_none(t: Tensor | None, like: Tensor) -> Tensor:
    return like.new_empty(0) if t is None else t


def _present_saved(
    w_hr: Tensor | None, g_hh: Tensor | None, peep: Tensor | None, zone_c: Tensor | None
) -> tuple[bool, ...]:
    """Which saved tensors the kernel defines: hraw with a projection, rhat .. crstd with LayerNorm, craw (the cell
    before zoneout) with zoneout of c and peepholes."""
    proj, ln = w_hr is not None, g_hh is not None
    return (True, True, True, True, proj, ln, ln, ln, ln, zone_c is not None and peep is not None)


@torch.library.custom_op("lstmkit::lstm_scan", mutates_args=(), device_types="cpu")
def lstm_scan_op(
    xg: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    w_hr: Tensor | None,
    peep: Tensor | None,
    g_hh: Tensor | None,
    g_c: Tensor | None,
    b_c: Tensor | None,
    drop: Tensor | None,
    mask: Tensor | None,
    coupled: bool,
    eps: float,
    zone_h: Tensor | None,
    zone_c: Tensor | None,
    train: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The C++ forward: y (T, B, P), h_n (B, P), c_n (B, H), then the 10 saved tensors (``train``; else empty)."""
    out = _ext().forward(
        xg, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c, drop, mask, coupled, eps, zone_h, zone_c, train, None, None
    )
    saved = out[3:] if train else [None] * N_SAVED
    return tuple(_empty_like_none(t, xg) for t in (*out[:3], *saved))  # type: ignore[return-value]


@lstm_scan_op.register_fake
def _(xg, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c, drop, mask, coupled, eps, zone_h, zone_c, train):
    T, B, G = xg.shape
    H, P = c0.shape[1], h0.shape[1]
    ys, hn, cn = xg.new_empty(T, B, P), xg.new_empty(B, P), xg.new_empty(B, H)
    if not train:
        return (ys, hn, cn, *(xg.new_empty(0) for _ in range(N_SAVED)))
    hin_t = T + 1 if (mask is not None or drop is not None) else T  # the kernel's hin has a spare row then
    shapes = [(T, B, G), (T + 1, B, H), (T, B, H), (hin_t, B, P), (T, B, H), (T, B, G), (T, B), (T, B, H), (T, B),
              (T, B, H)]  # fmt: skip
    present = _present_saved(w_hr, g_hh, peep, zone_c)
    saved = [xg.new_empty(s if p else (0,)) for s, p in zip(shapes, present, strict=True)]
    return (ys, hn, cn, *saved)


@torch.library.custom_op("lstmkit::lstm_scan_backward", mutates_args=(), device_types="cpu")
def lstm_scan_backward_op(
    dy: Tensor,
    dhn: Tensor,
    dcn: Tensor,
    saved: list[Tensor],
    w_hh: Tensor,
    w_hr: Tensor | None,
    peep: Tensor | None,
    g_hh: Tensor | None,
    g_c: Tensor | None,
    drop: Tensor | None,
    mask: Tensor | None,
    zone_h: Tensor | None,
    zone_c: Tensor | None,
    coupled: bool,
    need_w: bool,
    need_extra: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The C++ backward: dxg, dh0, dc0, dw_hh, dw_hr, dpeep, dg_hh, dg_c, db_c (empty where not computed)."""
    present = _present_saved(w_hr, g_hh, peep, zone_c)
    kept = [t if p else None for t, p in zip(saved, present, strict=True)]
    grads = _ext().backward(
        dy, dhn, dcn, kept, w_hh, w_hr, peep, g_hh, g_c, drop, mask, zone_h, zone_c, coupled, need_w, need_extra
    )
    return tuple(_empty_like_none(g, dy) for g in grads)  # type: ignore[return-value]


@lstm_scan_backward_op.register_fake
def _(dy, dhn, dcn, saved, w_hh, w_hr, peep, g_hh, g_c, drop, mask, zone_h, zone_c, coupled, need_w, need_extra):
    T, B, G = saved[0].shape
    H, P = saved[1].shape[2], w_hh.shape[1]

    def grad(present: bool, *shape) -> Tensor:
        return dy.new_empty(shape if present else (0,))

    ln = g_hh is not None
    return (
        grad(True, T, B, G),
        grad(True, B, P),
        grad(True, B, H),
        grad(need_w, G, P),
        grad(need_w and w_hr is not None, P, H),
        grad(need_extra and peep is not None, *(() if peep is None else peep.shape)),
        grad(need_extra and ln, G),
        grad(need_extra and ln, H),
        grad(need_extra and ln, H),
    )


def _setup_context(ctx, inputs, output) -> None:
    a = ScanArgs(*inputs[:-1])  # the last input is ``train``
    saved = output[3:]
    ctx.mark_non_differentiable(*saved)
    # Gradients of outputs autograd never reached stay None here: materialising zeros for the nine
    # saved tensors would cost a pass over each. The backward makes zeros for y, h_n, c_n itself.
    ctx.set_materialize_grads(False)
    ctx.coupled = a.coupled
    ctx.train = inputs[-1]
    ctx.save_for_backward(*saved, *recurrent_of(a))


def _backward(ctx, dy, dhn, dcn, *_saved_grads):
    if not ctx.train:
        raise RuntimeError(
            "lstmkit::lstm_scan was traced without gradients (train=False, e.g. torch.export under no_grad), "
            "so it kept nothing for the backward; trace it with grad mode on to train with it"
        )
    tensors = ctx.saved_tensors
    saved = list(tensors[:N_SAVED])
    w_hh, w_hr, peep, g_hh, g_c, drop, mask, zone_h, zone_c = tensors[N_SAVED:]
    T, B, _ = saved[0].shape
    H, P = saved[1].shape[2], w_hh.shape[1]
    # Zeros for outputs autograd never reached, as LSTMScanCpp gets them (materialised by autograd).
    dy = saved[0].new_zeros(T, B, P) if dy is None else dy
    dhn = saved[0].new_zeros(B, P) if dhn is None else dhn
    dcn = saved[0].new_zeros(B, H) if dcn is None else dcn
    need = ctx.needs_input_grad
    grads = lstm_scan_backward_op(
        dy, dhn, dcn, saved, w_hh, w_hr, peep, g_hh, g_c, drop, mask, zone_h, zone_c, ctx.coupled,
        bool(need[3] or need[4]), any(need[5:9]),
    )
    grads = [g if n else None for g, n in zip(grads, need[:N_DIFFERENTIABLE], strict=True)]
    return (*grads, *[None] * (N_SCAN_ARGS + 1 - N_DIFFERENTIABLE))  # nothing for drop .. zone_c and train


lstm_scan_op.register_autograd(_backward, setup_context=_setup_context)


def tracing(x: Tensor) -> bool:
    """Whether ``x`` is being traced rather than computed: torch.compile / torch.export, torch.jit.trace,
    a dispatch mode (fake tensors, functionalisation, make_fx) or a tensor subclass. The C++ extension
    reads tensor data, which a tracer's tensors do not have: there only the custom op can run."""
    return (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or type(x) is not Tensor
        or _get_current_dispatch_mode() is not None
    )


def transformed() -> bool:
    """Whether a torch.func transform is active (grad, vmap, jvp, jacrev, jacfwd, hessian, ...). The kernels'
    autograd Functions have no functorch rules (the C++ one reads tensor data, which a batched or dual tensor
    does not lay out as it reads), so the layers run their reference loops there: plain torch operations, which
    every transform composes with."""
    if torch.compiler.is_compiling():  # Dynamo would not read the stack as eager does; compiled graphs take the op
        return False
    peek = getattr(torch._C._functorch, "peek_interpreter_stack", None)
    return peek is not None and peek() is not None


def _check(tensors: dict[str, Tensor | None], dtype: torch.dtype) -> None:
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"lstm_scan_cpp supports float32 and float64, got {dtype}; use _fused.lstm_scan")
    for name, t in tensors.items():
        if t is None:
            continue
        if t.device.type != "cpu":
            raise ValueError(f"lstm_scan_cpp runs on CPU tensors only, got {name} on {t.device}; use _fused.lstm_scan")
        if name != "mask" and t.dtype != dtype:
            raise TypeError(f"lstm_scan_cpp: {name} has dtype {t.dtype}, expected {dtype} like xg")


def lstm_scan_cpp(
    xg: Tensor,
    state: tuple[Tensor, Tensor],
    w: LSTMWeights,
    opt: LSTMOptions,
    drop: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    zone: tuple[Tensor | None, Tensor | None] = (None, None),
    finish_input: bool = False,
    source: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fused recurrence over precomputed input gates ``xg`` (T, B, G), in C++.

    Same contract as ``_fused.lstm_scan``: returns y (T, B, P), h_n (B, P), c_n (B, H); ``mask`` is
    (T, B) bool (False past a sequence's end), ``drop`` the (B, P) recurrent-dropout mask, already
    scaled by 1/(1-p), ``zone`` zoneout's weights (z_h, z_c); ``source`` the layer input x when xg is
    ``input_gates(x, w, opt)`` (for gradients of gradients). Raises RuntimeError if ``available()`` is False.

    Inference only: with ``finish_input``, ``xg`` is W_ih x without the biases and the kernel finishes the
    input side step by step, in the gate pass: + b_ih + b_hh, after LN_ih (gain ``w.g_ih``) for a layer_norm
    layer, which overwrites ``xg``: it must then be a contiguous buffer of the caller's own.
    """
    args = scan_args(xg, state, w, opt, drop, mask, zone)
    g_ih, b_x = _input_finish(w, finish_input)
    named = {**args._asdict(), "g_ih": g_ih, "b_x": b_x}
    del named["coupled"], named["eps"]
    _check(named, xg.dtype)
    differentiable = (*args[:N_DIFFERENTIABLE], g_ih, b_x)
    train = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in differentiable)
    if tracing(xg):
        # A jit trace keeps ``train`` as a constant: always keep what the backward needs there, so that
        # the traced module can train whichever grad mode it was traced under.
        train = train or torch.jit.is_tracing()
        if finish_input:  # it may overwrite xg, which an op that mutates nothing may not do
            raise ValueError("finish_input is for eager mode only, not under torch.compile, export or tracing")
        out = lstm_scan_op(*args, train)
        return out[0], out[1], out[2]
    ext = _ext()
    if finish_input:
        if train:
            raise ValueError("finish_input is for inference only (no tensor requiring grad with grad mode on)")
        ys, hn, cn = ext.forward(*args, False, g_ih, b_x)
        return ys, hn, cn
    if not train:
        ys, hn, cn = ext.forward(*args, False, None, None)
        return ys, hn, cn
    return LSTMScanCpp.apply(*args, *GateSource.of(source, w))


def lstm_scan_cpp_input(
    x: Tensor,
    state: tuple[Tensor, Tensor],
    w: LSTMWeights,
    opt: LSTMOptions,
    drop: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    zone: tuple[Tensor | None, Tensor | None] = (None, None),
) -> tuple[Tensor, Tensor, Tensor]:
    """Inference recurrence that computes the input side too: ``lstm_scan_cpp``'s contract with x (T, B, I) and
    ``w.w_ih`` in place of xg. The kernel multiplies a chunk of steps of x by W_ih^T at a time into a small buffer
    (about 1 MB, or 256 KB on the panels of a W_ih up to 4 MB; read from cache by its steps; ``_ext().input_chunk``)
    and finishes each step's row itself
    (LN_ih with LayerNorm, then b_ih + b_hh), so no (T, B, G) tensor is ever made. Eager inference only: with grad
    mode on and a tensor requiring grad, or under a tracer, use ``input_gates`` and ``lstm_scan_cpp``."""
    args = scan_args(x, state, w, opt, drop, mask, zone)
    differentiable = (x, w.w_ih, *args[1:N_DIFFERENTIABLE], w.g_ih, w.b_ih, w.b_hh)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in differentiable):
        raise ValueError("lstm_scan_cpp_input is for inference only (no tensor requiring grad with grad mode on)")
    if tracing(x):
        raise ValueError("lstm_scan_cpp_input is for eager mode only, not under torch.compile, export or tracing")
    g_ih, b_x = _input_finish(w, True)
    named = {**args._asdict(), "x": x, "w_ih": w.w_ih, "g_ih": g_ih, "b_x": b_x}
    del named["xg"], named["coupled"], named["eps"]
    _check(named, x.dtype)
    ys, hn, cn = _ext().forward_input(x, w.w_ih, *args[1:], g_ih, b_x)
    return ys, hn, cn


class _WholeLinear(torch.autograd.Function):
    """x (..., I) @ w^T (w (G, I)) [+ b (G,)] with the C++ extension's brgemm on panels for the product and for
    both gradients (dx = dy w, dw = dy^T x over every row): ``whole_linear``'s panel path. A backward under grad
    mode (``create_graph=True``) computes the same gradients with torch operations, so they can be differentiated
    again."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        G, I = w.shape
        x2 = x.reshape(-1, I).contiguous()  # (M, I), M = every leading index (T B)
        y = x2.new_empty(1, x2.shape[0], G)
        _ext().plane_products(x2.unsqueeze(0), w.t().unsqueeze(0), y, False)  # (1, M, G), w^T read by columns
        if b is not None:
            y += b
        ctx.save_for_backward(x2, w)
        ctx.lead = x.shape[:-1]
        return y.view(*x.shape[:-1], G)

    @staticmethod
    def backward(ctx, dy: Tensor):
        x2, w = ctx.saved_tensors
        G, I = w.shape
        need_x, need_w, need_b = ctx.needs_input_grad
        dy2 = dy.reshape(-1, G)  # (M, G)
        if torch.is_grad_enabled():  # create_graph=True: differentiable torch operations
            dx = (dy2 @ w).view(*ctx.lead, I) if need_x else None
            return dx, dy2.t() @ x2 if need_w else None, dy2.sum(0) if need_b else None
        dy2 = dy2.contiguous()
        dx = dw = None
        if need_x:
            dx = dy2.new_empty(1, dy2.shape[0], I)
            _ext().plane_products(dy2.unsqueeze(0), w.unsqueeze(0), dx, False)  # (1, M, I) = dy w
            dx = dx.view(*ctx.lead, I)
        dw = _panel_weight_gradient(dy2, x2) if need_w else None
        return dx, dw, dy2.sum(0) if need_b else None


def _panel_weight_gradient(d: Tensor, x: Tensor) -> Tensor:
    """d^T x (N, K) for d (R, N) and x (R, K), float32, on the extension's panels as (x^T d)^T: x^T (K, R) is the
    copy to make (the smaller one where K <= N)."""
    dwt = d.new_empty(1, x.shape[1], d.shape[1])
    _ext().plane_products(x.t().contiguous().unsqueeze(0), d.contiguous().unsqueeze(0), dwt, False)
    return dwt[0].t().contiguous()  # (N, K)


# Below this many rows packing W into panels costs more than the panels save, and ``whole_linear`` and
# ``weight_gradient`` take torch's product: (M x 650) x (650 x 10,000) ran at 1.33x F.linear's time at M = 16, 0.73x
# at 64 and 0.55x at 256 (session 41's EPYC, one thread; every shape of `python benchmarks/linear.py`,
# docs/benchmarks.md).
PANEL_MIN_ROWS = 64


def _on_panels(x: Tensor, w: Tensor, b: Tensor | None, rows: int) -> bool:
    """Whether a product of ``rows`` rows of x with w goes to the extension's panels (see ``whole_linear``)."""
    return not (
        x.dtype != torch.float32
        or w.dtype != torch.float32
        or (b is not None and b.dtype != torch.float32)
        or x.device.type != "cpu"
        or rows < PANEL_MIN_ROWS
        or tracing(x)
        or transformed()
        or torch.is_autocast_enabled("cpu")
        or not available()
        or _ext().whole_gemm() != "panels"
    )


def weight_gradient(d: Tensor, x: Tensor) -> Tensor:
    """d^T x (N, K), the weight gradient of y = x W^T over R rows (d = dL/dy (R, N), x (R, K)): on the extension's
    panels where ``whole_linear``'s rule puts products (float32 CPU, AMD's AVX-512 CPUs, not traced), else
    ``torch.mm``."""
    return _panel_weight_gradient(d, x) if _on_panels(d, x, None, d.shape[0]) else d.t() @ x


def whole_linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``F.linear(x, w, b)`` for the input side of a training step (x (T, B, I), w = W_ih (G, I)): on the C++
    extension's brgemm panels (``_WholeLinear``) where its rule says so (``_ext().whole_gemm()``: AMD CPUs with
    AVX-512, where MKL's sgemm runs at half the panels' speed) for float32 CPU tensors of at least
    ``PANEL_MIN_ROWS`` rows in eager mode without autocast; ``F.linear`` everywhere else. Values equal
    ``F.linear``'s to float32 rounding (another summation order); tests/nn/test_cpp_kernel.py holds both paths to
    torch's with a derived bound. Public as ``lstmkit.nn.linear``."""
    if x.dim() < 2 or not _on_panels(x, w, b, x.numel() // max(x.shape[-1], 1)):
        return torch.nn.functional.linear(x, w, b)
    return _WholeLinear.apply(x, w, b)


def _input_finish(w: LSTMWeights, finish_input: bool) -> tuple[Tensor | None, Tensor | None]:
    """(g_ih, b_x) for a kernel that finishes W_ih x itself (inference): the LayerNorm gain (None without
    LayerNorm) and b_ih + b_hh (None without biases); (None, None) when xg is finished already."""
    if not finish_input:
        return None, None
    if w.g_hh is not None and w.g_ih is None:
        raise ValueError("finish_input with layer_norm needs the input side's LayerNorm gain w.g_ih")
    return w.g_ih, None if w.b_ih is None else w.b_ih + w.b_hh


# --- int8 -------------------------------------------------------------------------------------
def int8_weight(q: Tensor, scale: Tensor, zero: Tensor, *, reduce_range: bool = True):
    """An int8 weight matrix for :func:`lstm_scan_int8`: ``q`` (N, K) uint8 in [0, 255] with a scale and
    zero point per row (lstmkit's 8-bit format: w = (q - zero) * scale), packed once by torch's
    quantized backend (fbgemm). Its ``apply(x)`` is x (..., K) -> x W^T (..., N) with x quantised on the
    fly to 8 bits (7 with ``reduce_range``, which AVX2's 16-bit pair sums need to stay exact).
    Raises RuntimeError if ``available()`` is False."""
    if q.dtype != torch.uint8 or q.dim() != 2:
        raise ValueError(f"q must be a 2-D uint8 tensor, got {q.dtype} {tuple(q.shape)}")
    shifted = (q.to(torch.int16) - 128).to(torch.int8)  # the same w: (q - 128) - (zero - 128)
    zero_shifted = zero.to(torch.int64) - 128
    if bool(((zero_shifted < -128) | (zero_shifted > 127)).any()):
        raise ValueError("int8 compute needs every zero point in [0, 255]")
    with warnings.catch_warnings():  # torch 2.13 notes that quantized tensors will be deprecated
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")
        return _ext().Int8Weight(shifted, scale.to(torch.float32), zero_shifted, None, reduce_range)


def lstm_scan_int8(
    xg: Tensor,
    state: tuple[Tensor, Tensor],
    q_hh,
    q_hr,
    w: LSTMWeights,
    opt: LSTMOptions,
    mask: Tensor | None = None,
    *,
    zone: tuple[Tensor | None, Tensor | None] = (None, None),
    finish_input: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Inference recurrence with int8 recurrent weights: ``lstm_scan_cpp``'s contract, with W_hh (and
    W_hr) given as :func:`int8_weight` objects ``q_hh`` (``q_hr``); ``w`` supplies the rest (peepholes,
    LayerNorm gains; its w_hh / w_hr are ignored). Returns y (T, B, P), h_n (B, P), c_n (B, H)."""
    h0, c0 = state
    g_ih, b_x = _input_finish(w, finish_input)
    ys, hn, cn = _ext().forward_int8(xg, h0, c0, q_hh, q_hr, w.peep, w.g_hh, w.g_c, w.b_c, mask, opt.coupled,
                                     opt.eps, g_ih, b_x, *zone)
    return ys, hn, cn


def lstm_step_int8(x: Tensor, state: tuple[Tensor, Tensor], q_ih, q_hh, q_hr, bias: Tensor | None,
                   w: LSTMWeights, opt: LSTMOptions) -> tuple[Tensor, Tensor, Tensor]:
    """One step of :func:`lstm_scan_int8` with the input projection in the same call (streaming):
    x (B, I) -> y (B, P), h (B, P), c (B, H). ``bias`` is b_ih + b_hh, or None (with LayerNorm the
    kernel adds the biases after normalising, from ``w``)."""
    h0, c0 = state
    g_ih = b_x = None
    if w.g_hh is not None:
        g_ih, b_x, bias = w.g_ih, None if w.b_ih is None else w.b_ih + w.b_hh, None
    y, h, c = _ext().step_int8(x, h0, c0, q_ih, q_hh, q_hr, bias, w.peep, w.g_hh, w.g_c, w.b_c, opt.coupled,
                               opt.eps, g_ih, b_x)
    return y, h, c


# --- low rank ---------------------------------------------------------------------------------
def lstm_scan_lowrank(
    xg: Tensor,
    state: tuple[Tensor, Tensor],
    left: Tensor,
    right: Tensor,
    w: LSTMWeights,
    opt: LSTMOptions,
    mask: Tensor | None = None,
    *,
    zone: tuple[Tensor | None, Tensor | None] = (None, None),
    finish_input: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Inference recurrence with W_hh = left (G, R) @ right (R, P): ``lstm_scan_cpp``'s contract, each
    step's recurrent product as two thin products h right^T left^T (R (G + P) multiply-adds instead of
    G P); ``w`` supplies the rest (its w_hh is ignored). Returns y (T, B, P), h_n (B, P), c_n (B, H)."""
    h0, c0 = state
    g_ih, b_x = _input_finish(w, finish_input)
    ys, hn, cn = _ext().forward_lowrank(xg, h0, c0, left, right, w.w_hr, w.peep, w.g_hh, w.g_c, w.b_c, mask,
                                        opt.coupled, opt.eps, g_ih, b_x, *zone)
    return ys, hn, cn
