"""The ``headreg`` command line (DESIGN.md, "The command line"): one module per
subcommand, each with ``add_parser(commands)`` and ``run(args) -> exit code``."""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..core.errors import HeadRegError

COMMANDS = ("phantom", "info", "demo", "groundtruth", "synth", "dataset", "register", "batch", "evaluate",
            "modality", "train")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``command`` alone: its module alone is then
    imported, so that ``headreg register`` starts without PyTorch and imports it in a
    thread while the volumes are checked (``autoregister.register_volumes``)."""
    parser = argparse.ArgumentParser(
        prog="headreg",
        description="Fully automatic rigid registration of head CT and MRI (HeadRegistration). "
                    "Transforms map fixed (MR) points to moving (CT) points, LPS mm, as ITK files.")
    parser.add_argument("--version", action="version", version=f"headreg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (command,) if command in COMMANDS else COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Run a subcommand; a user's mistake (HeadRegError, a file error) is one line on stderr
    and exit 1, Ctrl-C exit 130; a bug keeps its traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return args.run(args)
    except HeadRegError as error:
        print(f"headreg {args.command}: error: {error}", file=sys.stderr)
    except OSError as error:
        print(f"headreg {args.command}: error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"headreg {args.command}: interrupted", file=sys.stderr)
        return 130
    return 1
