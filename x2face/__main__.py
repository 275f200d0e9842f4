"""``python -m x2face``: see ``x2face.cli``."""
import sys

from .cli import main

sys.exit(main())
