"""``python -m smtpx``: the ``smtpx`` command (see :mod:`smtpx.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
