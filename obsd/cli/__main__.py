"""`python -m obsd.cli`: the same as the `obsd` command."""

from obsd.cli import main

main()
