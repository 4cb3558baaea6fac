"""``python -m storenode.cli``: the ``storenode`` command."""

import sys

from storenode.cli import main

if __name__ == "__main__":
    sys.exit(main())
