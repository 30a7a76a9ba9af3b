"""`python -m posterlite.cli`: the `posterlite` command."""

import sys

from posterlite.cli import main

sys.exit(main())
