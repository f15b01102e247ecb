"""`python -m resnet_nb ...`: the command line (resnet_nb.cli)."""
from .signals import ignore_stop_signals, quiet_while_starting

quiet_while_starting("python -m resnet_nb")    # before the libraries load (seconds)
from .cli import main  # noqa: E402

code = main()
ignore_stop_signals()
raise SystemExit(code)
