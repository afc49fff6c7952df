"""``python -m durablehost``: the ``durablehost`` command (the workers of ``start --workers N`` run so)."""

import sys

from durablehost.cli import main

sys.exit(main())
