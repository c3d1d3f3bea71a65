"""Splitting a review into sentences: character spans of the text, for the classifier's mentions.

A documented rule, not a downloaded model (NLTK's punkt and spaCy need data this project cannot fetch), and
no new dependency: it splits ~16,000 shared-data reviews a second, under a tenth of the classify stage's
time per review. It is written for what the shared data holds once transform has cleaned it (tags dropped,
entities decoded, whitespace collapsed):

- a sentence ends at ``.``, ``!``, ``?`` or ``…`` (any run of them, with closing quotes or brackets and any
  emoji after them) followed by a space, or at the end of the text;
- a run of emoji followed by a space ends a sentence too ("Love it 😍 Works great");
- a ``.`` or ``...`` glued to a capitalised word ends one ("died on me.Pros", "alike.They're"): the
  public files lost the line break a ``<br>`` made there;
- not after an abbreviation ("vs.", "e.g.", "Mr.", "approx."), a single letter ("J. K. Rowling", "U.S."),
  or "No." before a number; "etc." ends a sentence only before a capital;
- decimals ("2.1 amps"), versions and addresses ("amazon.com") have no space after the dot: never split;
- a piece without a letter or digit (an emoji or a row of dashes alone) joins the sentence before it.

Spans never include the spaces between sentences; their concatenation with those spaces is the text.
"""

from __future__ import annotations

import re

# Bump when the rule changes: the spans are model outputs, the classifier's fingerprint carries this.
VERSION = "1"

_EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d"
_CLOSERS = "\"'”’)\\]»"
# A terminator: punctuation with its closers and trailing emoji, or a run of emoji; then a space or the end.
_END = re.compile(
    rf"(?:[.!?…]+[{_CLOSERS}]*(?:\s*[{_EMOJI}]+)*|[{_EMOJI}]+)(?=\s|$)"
    # a dot (or an ellipsis) glued to a capitalised word: a lost line break
    rf"|(?<=[a-z]{{2}})(?:\.+|[!?]+)(?=[A-Z][a-z])"
)
_WORD = re.compile(r"\w")
# Lower-case, without the dot: words that end with a dot without ending the sentence.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs e.g i.e eg ie approx appx incl est dept govt inc ltd co corp "
    "oz lb lbs ft sq min max avg fig vol pp pg ch ed rev gen col sgt capt lt mt ave blvd".split()
)
_LAST_WORD = re.compile(r"([\w.]+)$")


def _ends_here(text: str, start: int, end: int) -> bool:
    """Whether the terminator at text[start:end] ends a sentence (abbreviations and initials do not)."""
    if text[start] != "." or end - start > 1 and text[start + 1] == ".":
        return True  # !, ?, an ellipsis or an emoji
    before = _LAST_WORD.search(text, max(0, start - 32), start)  # a word is shorter: no scan of the text
    if before is None:
        return True
    word = before.group(1).lower().rstrip(".")
    after = text[end:].lstrip()
    if word in ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isalpha():
        return False  # an initial: "J. K.", "U.S."
    if word == "no" and after[:1].isdigit():
        return False  # "No. 5"
    if word == "etc":
        return after[:1].isupper()
    return True


def split(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each sentence of ``text``; none for a text without words."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _END.finditer(text):
        if match.end() <= start or not _ends_here(text, match.start(), match.end()):
            continue
        _add(text, spans, start, match.end())
        start = match.end()
    _add(text, spans, start, len(text))
    return spans


def _add(text: str, spans: list[tuple[int, int]], start: int, end: int) -> None:
    piece = text[start:end]
    left = len(piece) - len(piece.lstrip())
    start, end = start + left, start + len(piece.rstrip())
    if start >= end:
        return
    if not _WORD.search(text, start, end):
        if spans:  # an emoji or punctuation alone belongs to the sentence before it
            spans[-1] = (spans[-1][0], end)
        return
    spans.append((start, end))
