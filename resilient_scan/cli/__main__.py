"""``python -m resilient_scan.cli``: the ``resilient-scan`` command."""

import sys

from ._main import main

sys.exit(main())
