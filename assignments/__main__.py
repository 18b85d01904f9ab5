"""``python -m assignments {generate,validate,grade}`` — see assignments/README.md."""

import sys

from .kit.cli import main

if __name__ == "__main__":
    sys.exit(main())
