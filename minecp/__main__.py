"""``python -m minecp ...`` (and ``torchrun -m minecp ...``): see :mod:`minecp.cli`."""

import sys

from .cli import main

sys.exit(main())
