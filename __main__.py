"""``python -m neurohand``: the same as the ``neurohand`` command."""

import sys

from neurohand.cli import main

sys.exit(main())
