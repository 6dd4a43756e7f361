"""``python -m protocol decode|verify-chain``: see :mod:`protocol._cli`."""

import sys

from ._cli import main

sys.exit(main())
