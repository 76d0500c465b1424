"""`python -m radflow ...` = the `radflow` console script."""

import sys

from radflow.cli import main

sys.exit(main())
