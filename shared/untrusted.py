"""Text from outside the pipeline: the limits of ids and categories, control characters, safe CSV cells.

The loader enforces these on the public files; the transform stage again on what it reads from the
source, which another system may write.

- An id (product, buyer) or a category name is rejected when it holds a control character (U+0000-U+001F,
  U+007F-U+009F, tab and newline included) or an unpaired surrogate (U+D800-U+DFFF; not UTF-8), or when
  it is longer than its limit: ids are keys (of the source's tables, of the serving files, whose key
  width is the longest id), categories are labels.
- Free text (titles, review text, names, brands) keeps tab, newline and carriage return; other control
  characters and unpaired surrogates are stripped: old files hold a few (SUB in reviewer names, ETX in
  a review), the review is genuine, and PostgreSQL cannot store NUL.
- A rejected id is shown, never written as it came: its control characters and surrogates as escapes
  (``\\x00``, ``\\ud800``, backslashes doubled so an escape cannot be forged), so a rejects file holds no
  raw control character a terminal or spreadsheet would act on, and an operator reads what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Amazon's ids are 10 (ASIN) to 28 (2023 user_id) characters.
MAX_ID_CHARS = 64
# The longest category in the public files is 109 characters (a 2018 gift card's feature text used as one).
MAX_CATEGORY_CHARS = 200

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_ESCAPED = re.compile(r"[\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_STRIPPED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# OWASP's CSV injection guidance: a spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Limit:
    what: str
    max_chars: int

    def problem(self, value: str) -> str | None:
        """Why ``value`` cannot be this field, or None."""
        found = _FORBIDDEN.search(value)
        if found:
            code = ord(found.group())
            kind = "an unpaired surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
            return f"{self.what} holds U+{code:04X}, {kind}"
        if len(value) > self.max_chars:
            return f"{self.what} is {len(value)} characters, over the limit of {self.max_chars}"
        return None


PRODUCT_ID = Limit("product id", MAX_ID_CHARS)
BUYER_ID = Limit("buyer id", MAX_ID_CHARS)
CATEGORY = Limit("category", MAX_CATEGORY_CHARS)


def free_text(value: str) -> str:
    return _STRIPPED.sub("", value)


def _escape(found: re.Match) -> str:
    code = ord(found.group())
    return "\\\\" if code == ord("\\") else f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: str) -> str:
    """An id as a rejects file shows it: unchanged unless it holds a forbidden character, then escaped."""
    return _ESCAPED.sub(_escape, value) if _FORBIDDEN.search(value) else value


def csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs: OWASP's single-quote prefix."""
    return "'" + value if value.startswith(_FORMULA_START) else value
