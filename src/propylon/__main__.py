"""`python -m propylon` runs the CLI."""

from propylon.cli import app

app(prog_name="propylon")
