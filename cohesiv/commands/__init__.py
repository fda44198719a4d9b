"""One module per ``cohesiv`` subcommand (see :mod:`cohesiv.cli`)."""
