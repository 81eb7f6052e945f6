"""``python -m archspec`` runs the CLI."""
from .cli import main

main()
