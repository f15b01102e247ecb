import signal

from .cli import main

code = main()
# The command is over: a late Ctrl-C or SIGTERM must not interrupt the interpreter's clean-up
# (that printed "Exception ignored ..." tracebacks after a clean stop).
for _s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_s, signal.SIG_IGN)
raise SystemExit(code)
