"""Command-line plumbing shared by every bsmscan command.

Each command builds its ``argparse`` parser, adds the common options with
:func:`add_config_option`, and hands its body to :func:`run_command`, which sets up logging
and turns a :class:`~analysis.core.errors.UserError` into one clear line on stderr and exit
code 2 (anything else is a bug and keeps its traceback).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from analysis.core.config import AnalysisConfig, default_config, load_config
from analysis.core.errors import UserError

#: Exit code of a command stopped by a clear, named error (bad config, input, option).
EXIT_USER_ERROR = 2
#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` (the analysis YAML; default: the built-in analysis) and ``-v/--verbose``."""
    parser.add_argument("--config", type=Path, help="analysis config YAML (default: the built-in analysis)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level log messages")


def config_from_args(args: argparse.Namespace) -> AnalysisConfig:
    """The config named by ``--config``, or the built-in default analysis."""
    return load_config(args.config) if getattr(args, "config", None) else default_config()


def setup_logging(verbose: bool = False) -> None:
    """Log bsmscan's messages to stderr (INFO, or DEBUG with ``verbose``); quiet third parties."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr,
                        force=True)
    for noisy in ("distributed", "numba", "jax", "absl", "fsspec", "matplotlib", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def positive_int(text: str) -> int:
    """An ``argparse`` type for counts (``--workers``): an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type for indices (``--slot``): an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


_interrupts = 0  # Ctrl-C presses seen while a command ran


def _on_interrupt(signum, frame) -> None:
    global _interrupts
    _interrupts += 1
    raise KeyboardInterrupt


def interrupt_requested() -> bool:
    """Whether Ctrl-C was pressed while this command ran, even if a library swallowed the
    ``KeyboardInterrupt`` (long-running loops check it between steps and stop)."""
    return _interrupts > 0


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed (see :func:`interrupt_requested`)."""
    if interrupt_requested():
        raise KeyboardInterrupt


@contextmanager
def interrupt_handler() -> Iterator[None]:
    """Count Ctrl-C presses (and raise ``KeyboardInterrupt`` as usual) for the block."""
    global _interrupts
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _interrupts = 0
    previous = signal.signal(signal.SIGINT, _on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_command(body: Callable[[], int | None], *, verbose: bool = False, name: str = "bsmscan") -> int:
    """Run a command's ``body``; returns its exit code.

    A :class:`UserError` (or ``FileNotFoundError``) is printed as ``error: <message>`` with exit
    code 2; Ctrl-C gives exit code 130 after the body's own clean-up (context managers) ran.
    """
    setup_logging(verbose)
    try:
        with interrupt_handler():
            code = body()
    except (UserError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if interrupt_requested():  # pressed, but swallowed somewhere before the body returned
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if code is None else code
