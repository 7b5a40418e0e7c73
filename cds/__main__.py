"""``python -m cds``: the same command line as ``sortace-cds``."""

import sys

from cds.cli import main

sys.exit(main())
