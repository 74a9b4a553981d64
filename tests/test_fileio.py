"""The one writer under every file lstmkit writes: atomic, and never through a link or out of its root."""

from __future__ import annotations

import errno
import os

import matplotlib
import pytest

from lstmkit._fileio import (
    UnsafeWrite,
    atomic_path,
    describe_os_error,
    open_no_follow,
    save_figure,
    write_json_atomic,
    write_text_atomic,
)

matplotlib.use("Agg")


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    return path


def _link(run, name, target):
    run.mkdir(exist_ok=True)
    (run / name).symlink_to(target)
    return run / name


@pytest.mark.parametrize("writer", ["text", "json", "figure", "stream"])
def test_no_writer_follows_a_link(tmp_path, victim, writer):
    link = _link(tmp_path / "run", "out.png", victim)
    with pytest.raises(UnsafeWrite, match="is a symbolic link"):
        if writer == "text":
            write_text_atomic(link, "x")
        elif writer == "json":
            write_json_atomic(link, {"a": 1})
        elif writer == "figure":
            import matplotlib.pyplot as plt

            fig = plt.figure()
            try:
                save_figure(fig, link)
            finally:
                plt.close(fig)
        else:
            open_no_follow(link).close()
    assert victim.read_text() == "precious\n" and link.is_symlink()
    assert os.listdir(tmp_path / "run") == ["out.png"]  # no temporary file left either


def test_a_folder_linked_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeWrite, match="outside the run directory"):
        write_text_atomic(run / "checkpoints" / "a.json", "x", root=run)
    assert list(outside.iterdir()) == []
    write_text_atomic(run / "b.json", "x", root=run)  # inside is fine


def test_figure_format_follows_the_destination_not_the_temporary_name(tmp_path):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    save_figure(fig, tmp_path / "a.png")
    save_figure(fig, tmp_path / "a.svg")
    plt.close(fig)
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "a.svg").read_bytes()[:500]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(OSError, match="disk full"), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "disk full")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_os_errors_become_one_line_with_the_path():
    e = OSError(errno.EROFS, "Read-only file system", "/ro/run")
    assert describe_os_error(e) == "/ro/run: Read-only file system"
