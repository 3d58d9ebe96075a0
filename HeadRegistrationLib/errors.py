"""The one exception type for a user's mistake or bad input: the CLI prints its
message on one line, the Slicer module shows it in an error dialog."""


class HeadRegError(ValueError):
    """Bad input or an impossible request, with a message meant for the user."""
