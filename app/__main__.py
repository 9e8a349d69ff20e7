"""``python -m app`` is the ``promptstudio`` command."""
import sys

from app.cli import main

sys.exit(main())
