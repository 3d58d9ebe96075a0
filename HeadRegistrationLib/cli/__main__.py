"""``python -m HeadRegistrationLib.cli``: the ``headreg`` command."""

import sys

from . import main

sys.exit(main())
