"""`python -m klingspec` runs the command line."""

from klingspec.cli import main

raise SystemExit(main())
