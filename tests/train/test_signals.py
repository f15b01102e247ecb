"""resnet_nb.signals: a stop signal waits until the writes in progress are done."""
import os
import signal
import time

import pytest

from resnet_nb.signals import signals_deferred



def test_signals_wait_until_the_writes_are_done():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)                     # a handler would have run by now
            done.append("both files written")
    assert done == ["both files written"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_other_stop_signals_wait_too(name):
    """SIGTERM (`kill`) and SIGHUP (a closed terminal) stop a run as Ctrl-C does."""
    signum = getattr(signal, name)

    def stop(*_):
        raise KeyboardInterrupt(name)
    previous = signal.signal(signum, stop)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt, match=name):
            with signals_deferred():
                os.kill(os.getpid(), signum)
                time.sleep(0.05)
                done.append("both files written")
        assert done == ["both files written"] and signal.getsignal(signum) is stop
    finally:
        signal.signal(signum, previous)
