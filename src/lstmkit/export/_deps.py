"""The optional dependencies of the export, imported on first use with an error that says how to get them."""

from __future__ import annotations

from types import ModuleType

INSTALL = 'pip install "lstmkit[onnx]"  (or: pip install onnx onnxruntime)'


class MissingDependency(ImportError):
    """An optional package the export needs is not installed; the message says how to install it."""


def require(name: str, purpose: str) -> ModuleType:
    """Import and return the module ``name``; raise :class:`MissingDependency` naming the install command."""
    try:
        return __import__(name)
    except ImportError as e:
        raise MissingDependency(f"{purpose} needs the package {name!r}, which is not installed: {INSTALL}") from e


def onnx() -> ModuleType:
    return require("onnx", "ONNX export")


def onnxruntime() -> ModuleType:
    return require("onnxruntime", "checking an exported model (verify=True)")
