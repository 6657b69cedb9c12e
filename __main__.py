"""``python -m neurohand``: the same as the ``neurohand`` command."""

import sys

from neurohand.deploy.cli import main

sys.exit(main())
