"""The ``headreg`` command line (DESIGN.md, "The command line"): one module per
subcommand, each with ``add_parser(commands)`` and ``run(args) -> exit code``."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..core.errors import HeadRegError
from . import batch, dataset, demo, evaluate, groundtruth, info, modality, phantom, register, synth, train

COMMANDS = (phantom, info, demo, groundtruth, synth, dataset, register, batch, evaluate, modality, train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headreg",
        description="Fully automatic rigid registration of head CT and MRI (HeadRegistration). "
                    "Transforms map fixed (MR) points to moving (CT) points, LPS mm, as ITK files.")
    parser.add_argument("--version", action="version", version=f"headreg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Run a subcommand; a user's mistake (HeadRegError, a file error) is one line on stderr
    and exit 1, Ctrl-C exit 130; a bug keeps its traceback."""
    args = build_parser().parse_args(argv)
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
