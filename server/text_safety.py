"""Characters that make a name or a login look other than it is: bidirectional overrides and
isolates (a name shown reversed, "Trojan source"), and zero-width or invisible characters (two
logins that look the same). Refused wherever a person types a name or a login."""

from __future__ import annotations

import re

HIDDEN = re.compile(
    "["
    "\u061c"  # Arabic letter mark
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers (render as blanks)
    "\u180e"  # Mongolian vowel separator
    "\u200b-\u200f"  # zero-width space, non-joiner, joiner; LRM, RLM
    "\u202a-\u202e"  # embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # isolates
    "\ufeff"  # zero-width no-break space (a BOM inside text)
    "\ufff9-\ufffb"  # interlinear annotations
    "]"
)


def hidden_at(text: str) -> int | None:
    """The 1-based position of the first hidden or bidi-control character, or None."""
    m = HIDDEN.search(text)
    return m.start() + 1 if m is not None else None
