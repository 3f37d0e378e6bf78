"""`python -m pgkeel` runs the CLI."""

from pgkeel.cli import main

main()
