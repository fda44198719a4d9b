"""``python -m cohesiv`` runs the command line."""

from cohesiv.cli import main

raise SystemExit(main())
