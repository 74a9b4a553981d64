from __future__ import annotations

import json

import pytest

from lstmkit.data import PAD, UNK, CharTokenizer, WordTokenizer


def test_char_vocab_order_and_ids():
    tok = CharTokenizer.from_text("abracadabra")
    # a:5, b:2, r:2, c:1, d:1 -> frequency first, ties alphabetical, after <pad>=0 and <unk>=1.
    assert tok.tokens == [PAD, UNK, "a", "b", "r", "c", "d"]
    assert tok.encode("bad") == [3, 2, 6]
    assert tok.pad_id == 0 and tok.unk_id == 1


def test_char_round_trip_and_unknown():
    text = "hello, world\n"
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("hz") == [tok.tokens.index("h"), tok.unk_id]
    assert tok.decode(tok.encode("hz")) == "h" + UNK


def test_min_freq_and_max_size():
    text = "aaaa bbb cc d"
    assert CharTokenizer.from_text(text, min_freq=3).tokens == [PAD, UNK, "a", " ", "b"]
    assert CharTokenizer.from_text(text, max_size=4).tokens == [PAD, UNK, "a", " "]
    assert len(CharTokenizer.from_text(text, max_size=2)) == 2


def test_word_tokenizer_round_trip_normalises_whitespace():
    tok = WordTokenizer.from_text(["the cat sat", "the  dog\tsat"])
    assert tok.tokens == [PAD, UNK, "sat", "the", "cat", "dog"]
    assert tok.decode(tok.encode("the   dog sat ")) == "the dog sat"
    assert tok.encode("the fish") == [3, tok.unk_id]


def test_decode_skips_pad_unless_asked():
    tok = WordTokenizer.from_text("a b")
    assert tok.decode([2, 0, 0]) == "a"
    assert tok.decode([2, 0], skip_pad=False) == f"a {PAD}"
    with pytest.raises(ValueError, match=r"ids must be in \[0, 4\)"):
        tok.decode([2, 9])


def test_specials_in_text_are_not_duplicated():
    tok = WordTokenizer.from_text("<unk> x <pad> x")
    assert tok.tokens == [PAD, UNK, "x"]


def test_save_load_round_trip(tmp_path):
    for cls, text in ((CharTokenizer, "some text"), (WordTokenizer, "some more text")):
        tok = cls.from_text(text)
        tok.save(tmp_path / "vocab.json")
        back = cls.load(tmp_path / "vocab.json")
        assert back == tok and back.encode(text) == tok.encode(text)
        saved = json.loads((tmp_path / "vocab.json").read_text())
        assert saved["version"] == 1 and saved["kind"] == cls.kind


def test_load_rejects_wrong_version_kind_and_malformed(tmp_path):
    path = tmp_path / "vocab.json"
    CharTokenizer.from_text("abc").save(path)
    obj = json.loads(path.read_text())

    path.write_text(json.dumps({**obj, "version": 99}))
    with pytest.raises(ValueError, match=r"unsupported lstmkit.tokenizer version 99"):
        CharTokenizer.load(path)
    path.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match="holds a 'char' tokenizer, not 'word'"):
        WordTokenizer.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid JSON file"):
        CharTokenizer.load(path)
    path.write_text(json.dumps({**obj, "tokens": ["a", "b"]}))
    with pytest.raises(ValueError, match="tokens must start with"):
        CharTokenizer.load(path)
    path.write_text(json.dumps({**obj, "tokens": [PAD, UNK, "a", "a"]}))
    with pytest.raises(ValueError, match="duplicates"):
        CharTokenizer.load(path)
    path.write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(ValueError, match=r"expected format 'lstmkit.tokenizer'"):
        CharTokenizer.load(path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_freq must be an int >= 1"):
        CharTokenizer.from_text("a", min_freq=0)
    with pytest.raises(ValueError, match="max_size must be None or an int >= 2"):
        CharTokenizer.from_text("a", max_size=1)
    with pytest.raises(TypeError, match="text must be a str"):
        CharTokenizer.from_text("a").encode(["a"])
