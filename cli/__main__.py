"""``python -m cli``: the same as the ``facefleet`` command."""

import sys

from cli.main import main

sys.exit(main())
