"""The ``tgqr`` command line (entry point ``actors.cli:main``) and the demo."""

from __future__ import annotations

from ._demo import (
    run_demo,
)
from ._main import (
    main,
)

__all__ = [
    "main",
    "run_demo",
]
