"""Signals: Ctrl-C (SIGINT), SIGTERM (a scheduler, `kill`, a closed Colab runtime) and SIGHUP
(a closed terminal) stop a run the same way, and never in the middle of a group of writes.

* `stops_as_interrupts`: while a command runs, each of them raises KeyboardInterrupt, so that
  `fit` keeps the finished epochs and --resume continues; it records which one arrived.
* `signals_deferred`: a group of writes that belong together (a checkpoint and its history)
  finishes first; the signal takes effect after it.
* `on_signal`: a handler of one signal for the time a block runs (a scheduler passes SIGTERM
  on to its children).
* `quiet_while_starting`, `ignore_stop_signals`: `python -m resnet_nb` ends with one line on a
  Ctrl-C while its libraries load, and a late signal does not disturb the interpreter's exit.

Nothing happens at import: each function sets handlers for the time it runs and puts the
previous ones back. Only the main thread can handle signals; elsewhere they are left alone.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator

#: The signals that stop a run (Ctrl-C, `kill`, a closed terminal), where they exist.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, turned into the same clean stop as Ctrl-C."""


def signal_name(signum: int | None) -> str:
    """'Ctrl-C' for SIGINT (or no signal), else the signal's name, e.g. 'SIGTERM'."""
    return "Ctrl-C" if signum in (None, signal.SIGINT) else signal.Signals(signum).name


@contextlib.contextmanager
def stops_as_interrupts() -> Iterator[list[int]]:
    """While the block runs, each of STOP_SIGNALS raises KeyboardInterrupt (Stopped for
    SIGTERM and SIGHUP). Yields the list of the signals received, the latest last."""
    received: list[int] = []

    def on_stop(signum, _frame):
        received.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signal.Signals(signum).name)

    previous = {}
    for s in STOP_SIGNALS:
        try:
            previous[s] = signal.signal(s, on_stop)
        except ValueError:   # not the main thread: leave the signals alone
            break
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def signals_deferred(signums=STOP_SIGNALS) -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT), SIGTERM and SIGHUP while the block runs, then deliver them.

    For groups of writes that belong together (a checkpoint and its history): a signal,
    or a second Ctrl-C, cannot leave one written and the other not. Only the main thread
    can handle signals; elsewhere the block simply runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for s in signums:
        try:
            previous[s] = signal.signal(s, lambda signum, _frame: received.append(signum))
        except (ValueError, OSError):   # not settable here
            pass
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(received):
            signal.raise_signal(s)


@contextlib.contextmanager
def on_signal(signum: int, handler: Callable) -> Iterator[None]:
    """`handler(signum, frame)` handles `signum` while the block runs; the previous handler
    is put back after it."""
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


def quiet_while_starting(prog: str) -> None:
    """Until the command installs its own handlers, a Ctrl-C (while the libraries load, which
    takes seconds) ends the process with one line instead of a traceback."""
    def stop(_signum, _frame):
        sys.stderr.write(f"{prog}: stopped by Ctrl-C while starting\n")
        sys.stderr.flush()
        # Not SystemExit: raised inside a library's import, it can be caught there (seen
        # once: the message, then the command ran on and exited 0). Nothing has been written
        # yet while starting, so ending the process at once loses nothing.
        os._exit(130)
    signal.signal(signal.SIGINT, stop)


def ignore_stop_signals() -> None:
    """The command is over: a late Ctrl-C or SIGTERM must not interrupt the interpreter's
    clean-up (that printed "Exception ignored ..." tracebacks after a clean stop)."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
