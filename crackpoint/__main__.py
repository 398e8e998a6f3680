"""`python -m crackpoint ...`: see crackpoint.cli."""

import sys

from crackpoint.cli import main

sys.exit(main())
