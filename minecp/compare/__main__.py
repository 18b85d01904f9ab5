"""``python -m minecp.compare ...`` (the same as ``python -m minecp compare ...``)."""

import sys

from .cli import main

sys.exit(main())
