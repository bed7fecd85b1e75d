"""``python -m qext ...``: the ``qext`` command, without the venv's bin/ on PATH."""

import sys

from .cli import main

sys.exit(main())
