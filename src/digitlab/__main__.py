"""`python -m digitlab` runs the command-line interface."""

from digitlab.cli import main

main()
