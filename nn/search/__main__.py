"""``python -m nn.search``."""

import sys

from nn.search.cli import main

sys.exit(main())
