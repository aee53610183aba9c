"""The entry point of ``tagger`` and ``python -m bmes_tagger``: it answers a signal from the
first moment, before the command line (typer, and torch or onnxruntime behind a command) is
imported. Until a command installs its own handlers, Ctrl-C, SIGTERM and SIGHUP end the
process as they do later: one line on stderr and exit code 128+N, never a traceback (Python's
own behaviour while importing) and never a silent death (SIGTERM's default).

Kept to the standard library: whatever this module imports is time in which no handler is
in place yet.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _ignore_all() -> None:
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)


def _stop_while_starting(signum: int, frame: Any) -> None:
    _ignore_all()  # once: a second signal, of any kind, must not cut the exit short
    sys.stderr.write(f"interrupted by {signal.Signals(signum).name}\n")
    raise SystemExit(128 + signum)


def main() -> None:
    """Install the start-up handlers, import the command line and run it."""
    for signum in STOP_SIGNALS:
        # an ignored signal (nohup) stays ignored, as the commands keep it
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _stop_while_starting)
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        _ignore_all()
        sys.stderr.write("interrupted\n")
        # see cli.main: a KeyboardInterrupt that left exec()'d code would otherwise end the
        # process by SIGINT instead of exit status 130
        exec("None")  # noqa: S102 - a constant
        raise SystemExit(130) from None
    cli_main()
