"""Word-level tokens: lower case, punctuation apart, a <nl> per line; and back to text."""

from __future__ import annotations

from lstmkit.tasks.wordlm import NL, detokenize, words


def test_words_split_punctuation_and_mark_lines():
    text = "Ber.\nWho's there?\n\nFran. Nay, answer me: O'er!\n"
    assert words(text) == [
        "ber", ".", NL, "who's", "there", "?", NL, "fran", ".", "nay", ",", "answer", "me", ":", "o'er", "!", NL,
    ]


def test_detokenize_reads_like_text():
    assert detokenize(["who's", "there", "?", NL, "nay", ",", "answer", "me", "."]) == "who's there?\nnay, answer me."
