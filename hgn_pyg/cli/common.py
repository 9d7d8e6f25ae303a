"""Shared plumbing of the command-line tools: argument helpers and error → exit-code handling.

A user error (:class:`~hgn_pyg.errors.HGNError`: bad config, bad data, a checkpoint that
does not fit; a missing or unreadable file; a diverging loss) prints one line on stderr and
exits with status 2.  Anything else is a bug: one line and status 1.  ``--debug`` shows the
traceback instead.  Ctrl-C exits with status 130; SIGTERM (e.g. ``kill``, a scheduler's stop)
is turned into :class:`Terminated`, so the same clean-up runs (temporary files removed, the error
line in the run's log) and the tool exits with status 143 and one line.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from hgn_pyg.errors import HGNError

__all__ = ["run_cli", "run_parsed", "add_common_arguments", "setup_logging", "Terminated"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (while :func:`run_cli` runs)."""

    def __str__(self) -> str:
        return "terminated by SIGTERM"


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise Terminated()


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", metavar="SECTION.key=value", action="append", default=[],
                        help="override a config value (YAML-parsed), e.g. --set TRAIN.lr=5e-4; repeatable")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")


def run_cli(fn: Callable[[], int], debug: bool, prog: str) -> int:
    """Run ``fn`` and turn exceptions into one line on stderr and an exit status."""
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(fn() or 0)
    except Terminated:
        if debug:
            raise
        print(f"{prog}: terminated (SIGTERM); a training run resumes with --resume EXP_DIR", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (HGNError, OSError, FloatingPointError) as exc:
        if debug:
            raise
        msg = " ".join(str(exc).split()) or exc.__class__.__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            raise
        logging.getLogger("hgn_pyg").debug("unexpected error", exc_info=True)
        msg = " ".join(str(exc).split())
        print(f"{prog}: internal error: {exc.__class__.__name__}: {msg} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _StderrHandler(logging.StreamHandler):
    """A console handler that writes to whatever ``sys.stderr`` is when a record is emitted
    (not the stream of the moment it was made: that one may be closed or swapped by then, e.g.
    when the CLIs run several times in one process)."""
    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(log_file: Optional[Path], level: str = "INFO", is_main: bool = True) -> None:
    """Send the ``hgn_pyg`` logger to stderr (and ``log_file``, appended) — called by the CLIs only.
    Non-main ranks log warnings and errors to stderr only.
    """
    logger = logging.getLogger("hgn_pyg")
    for h in list(logger.handlers):
        if getattr(h, "_hgn_pyg", False):
            logger.removeHandler(h)
            h.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    console = _StderrHandler()
    console.setLevel(getattr(logging, level.upper()) if is_main else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    console._hgn_pyg = True  # type: ignore[attr-defined]
    logger.addHandler(console)
    if log_file is not None and is_main:
        from hgn_pyg.io import NoFollowFileHandler

        fh = NoFollowFileHandler(log_file)  # appended, never through a symbolic link
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(fmt)
        fh._hgn_pyg = True  # type: ignore[attr-defined]
        logger.addHandler(fh)


def run_parsed(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
               argv: Optional[Sequence[str]], prog: str) -> int:
    """The ``main`` of a one-shot CLI with a ``--debug`` flag: parse ``argv``, log warnings to the
    console (everything with ``--debug``), then :func:`run_cli` ``run(args)``."""
    args = parser.parse_args(argv)
    setup_logging(None, level="DEBUG" if args.debug else "WARNING")
    return run_cli(lambda: run(args), args.debug, prog)
