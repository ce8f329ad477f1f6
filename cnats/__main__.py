"""``python -m cnats``: the same as the ``cnats`` command."""

import sys

from .cli import main

sys.exit(main())
