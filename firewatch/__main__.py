"""python -m firewatch."""

import sys

from firewatch.cli import main

sys.exit(main())
