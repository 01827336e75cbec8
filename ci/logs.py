"""What `python -m ci` prints, as standard logging to stdout: progress at INFO, each command's verdict at RESULT
(`-q` shows verdicts and warnings only, `-v` adds debug lines). Standard library only."""

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

RESULT = 25  # above INFO, below WARNING: what `-q` still shows
logging.addLevelName(RESULT, "RESULT")
LEVELS = {-1: RESULT, 0: logging.INFO, 1: logging.DEBUG}


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is at the time (a test's capture, a redirect), flushing each line."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def result(logger: logging.Logger, message: str) -> None:
    logger.log(RESULT, message)


def add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v", "--verbose", dest="verbosity", action="store_const", const=1, default=0,
        help="also show debug lines: commands run, AWS endpoint and region, cache hits and misses",
    )  # fmt: skip
    group.add_argument(
        "-q", "--quiet", dest="verbosity", action="store_const", const=-1,
        help="show only each command's result, warnings and errors",
    )  # fmt: skip


def configure(verbosity: int = 0, name: str = "ci") -> None:
    """Send `name`'s records at the chosen level to stdout, replacing a handler an earlier call installed."""
    logger = logging.getLogger(name)
    for handler in [h for h in logger.handlers if isinstance(h, _Stdout)]:
        logger.removeHandler(handler)
    handler = _Stdout(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(LEVELS[max(-1, min(1, verbosity))])


@contextmanager
def muted(name: str) -> Iterator[None]:
    """Hide this logger's progress (below WARNING) for a while: e.g. the builds the bench times, not reads."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(before)
