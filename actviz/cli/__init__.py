"""The command line: ``actviz`` or ``python -m actviz`` followed by a command (``layers``,
``export``, ``gradcam``, ``filters``, ``compare``, ``explain``, ``dataset``, ``concepts``,
``tcav``), one module each.

A thin front end over the package. Every mistake a user can make ends with
exit status 2 and one line on stderr starting with ``error:``; anything else
is a bug, logged with its traceback (shown with ``--debug``) and exit status 1.
Whatever a command writes lands whole in the folder given by ``--out``, or not
at all. A command module has ``add(commands)`` (its options) and ``run(args)``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from ..errors import ActvizError
from . import compare, concepts, dataset, explain, export, filters, gradcam, layers, tcav
from .common import EXIT_USAGE, import_keras_quietly, say_error

log = logging.getLogger("actviz")

#: command -> its module, in the order ``--help`` lists them.
COMMANDS = {
    "layers": layers, "export": export, "gradcam": gradcam, "filters": filters, "compare": compare, "explain": explain,
    "dataset": dataset, "concepts": concepts, "tcav": tcav,
}

__all__ = ["COMMANDS", "EXIT_USAGE", "build_parser", "import_keras_quietly", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, as for every other mistake
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def build_parser(prog: str = "actviz") -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog=prog, description="See what a trained Keras convolutional network sees.")
    parser.add_argument("--debug", action="store_true", help="on an unexpected failure, print the full traceback")
    parser.add_argument("--version", action="version", version=f"actviz {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMANDS.values():
        module.add(commands)
    return parser


def _program_name() -> str:
    """``actviz`` when run as the console script, ``python -m actviz`` when run as a module."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "actviz"
    return "python -m actviz" if name in ("__main__.py", "-m", "-c", "") else name


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser(prog or _program_name()).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return COMMANDS[args.command].run(args)
    except ActvizError as exc:
        say_error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        say_error("interrupted; nothing was left half-written")
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: logged with its traceback for whoever runs this
        if args.debug:
            log.exception("unexpected failure")
        say_error(
            f"unexpected failure ({type(exc).__name__}: {exc}); this is a bug in actviz, please report it"
            + ("" if args.debug else " (run again with --debug to see the traceback)")
        )
        return 1
