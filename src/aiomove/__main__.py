"""`python -m aiomove` runs the command line."""

from aiomove.cli import main

main()
