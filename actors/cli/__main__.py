"""``python -m actors.cli``: the same as the ``tgqr`` entry point."""

from __future__ import annotations

import sys

from ._main import main

sys.exit(main())
