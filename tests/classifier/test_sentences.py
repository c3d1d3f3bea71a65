"""The sentence rule, on real passages of the shared data (after transform's cleaning)."""

from __future__ import annotations

import pytest

from services.classifier.sentences import split


def pieces(text: str) -> list[str]:
    return [text[a:b] for a, b in split(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a line break the public file lost (a dropped <br>), decimals kept whole
        (
            "it subsequently died on me.Pros:-Has 2 USB ports, one (the top) is 2.1 amps. The bottom slot is 1.5 amps.",
            [
                "it subsequently died on me.",
                "Pros:-Has 2 USB ports, one (the top) is 2.1 amps.",
                "The bottom slot is 1.5 amps.",
            ],
        ),
        # an abbreviation, and a closing bracket after the end
        (
            "can't argue with the benefits of OEM vs. generic (reliability at the top of the list!). Works.",
            ["can't argue with the benefits of OEM vs. generic (reliability at the top of the list!).", "Works."],
        ),
        # an ellipsis glued to a capitalised word, then one that ends a sentence before a space
        (
            "Can plug in two things at one time....Con: Top clear piece came off... I taped it.",
            ["Can plug in two things at one time....", "Con: Top clear piece came off...", "I taped it."],
        ),
        # an emoji ends a sentence, or joins the one it follows
        ("Oh yeah...it works great, too.👍", ["Oh yeah...it works great, too.👍"]),
        ("Love it 😍 Works great!! 😀😀 Would buy again", ["Love it 😍", "Works great!! 😀😀", "Would buy again"]),
        # initials, a number's abbreviation, a web address; "etc." ends a sentence only before a capital
        (
            "Bought on amazon.com for J. K. Rowling's No. 5 fan etc. and more etc. Then it broke",
            ["Bought on amazon.com for J. K. Rowling's No. 5 fan etc. and more etc.", "Then it broke"],
        ),
        # an entity the cleaning decoded, and lower-case sentences
        (
            "my new AT&T; Galaxy SII case arrived fast. fits well",
            ["my new AT&T; Galaxy SII case arrived fast.", "fits well"],
        ),
        ("!!! 😀", []),
        ("", []),
    ],
)
def test_sentences_of_real_reviews(text, expected):
    assert pieces(text) == expected


def test_spans_hold_no_surrounding_space_and_cover_every_word():
    text = "  First one.   Second one!  "
    spans = split(text)
    assert spans == [(2, 12), (15, 26)]
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")
