"""The ``mmclip`` command line: demo, pre-training, evaluation, encoding and data preparation.

One module per command (or group) parses its arguments and calls library functions:
``demo``, ``pretrain``, ``evaluate`` (zeroshot / probe / finetune / retrieval), ``localize``
(JSRT nodules), ``encode``, ``data``, ``models``; ``_common`` holds what they share. Every
command prints a clear one-line ``mmclip: error: …`` (exit code 2) for a wrong path, a bad
config key or an unknown model; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import data, demo, encode, evaluate, localize, models, pretrain
from ._common import EPILOG_MAIN, PROG, CLIError, _common, _setup_logging, apply_data_root

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``mmclip`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="mmclip: medical vision-language pre-training on chest X-rays "
        "(contrastive + AttMIM + EntMLM).",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    for command in (demo, pretrain, evaluate, localize, encode, data, models):
        command.add_parser(sub)
    return parser


def _version() -> str:
    try:
        from mmclip import __version__

        return f"mmclip {__version__}"
    except Exception:  # pragma: no cover
        return "mmclip"


def _user_errors() -> tuple[type[BaseException], ...]:
    from mmclip.config import ConfigError
    from mmclip.data.records import DataError
    from mmclip.train.checkpoint import CheckpointError

    return (
        CLIError,
        ConfigError,
        CheckpointError,
        DataError,
        FileNotFoundError,
        NotADirectoryError,
        PermissionError,
        ValueError,
        FloatingPointError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mmclip`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    verbosity = -1 if getattr(args, "quiet", False) else int(getattr(args, "verbose", 0) or 0)
    _setup_logging(verbosity)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        apply_data_root(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug or not isinstance(err, _user_errors()):
            raise
        message = str(err).strip() or type(err).__name__
        if isinstance(err, FileNotFoundError) and err.filename and str(err.filename) not in message:
            message = f"{message}: {err.filename}"
        first, *rest = message.splitlines()
        print(f"{PROG}: error: {first}", file=sys.stderr)
        if rest:
            print("\n".join(f"  {line}" for line in rest), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
