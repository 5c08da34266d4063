"""Text helpers shared by the kinds that must fit a limit (Slack's blocks, an SMS)."""

from __future__ import annotations


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut at a word where one is near, marked with "...".

    Three dots, not "…": that character is outside the GSM 7-bit alphabet and would make
    the provider send UCS-2, which fits 70 characters per SMS instead of 160.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 3, 0)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "..."
