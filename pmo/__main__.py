"""`python -m pmo` is the `pmo` command."""

from pmo.cli import main

main()
