"""The one exception type for a user's mistake or bad input: the CLI prints its
message on one line, the Slicer module shows it in an error dialog; and the one way to
turn another library's error into such a line."""

import re

LOW_CONFIDENCE = 3   # exit status: the result was written but the quality check doubts it (DESIGN.md)


class HeadRegError(ValueError):
    """Bad input or an impossible request, with a message meant for the user."""


class Cancelled(HeadRegError):
    """The user asked the work to stop (Slicer's Cancel): nothing was written or changed."""

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)


def one_line(error: BaseException) -> str:
    """The useful one-line part of an error's message (for ITK's: after the last
    "ERROR:", without object addresses), or the error's type when it has none."""
    text = str(error).strip()
    if "ERROR:" in text:
        text = text.rsplit("ERROR:", 1)[1]
    text = " ".join(re.sub(r"\(?0x[0-9a-fA-F]+\)?", "", text).split())
    return text[:300] or type(error).__name__
