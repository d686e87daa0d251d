"""`python -m handshape.cli`: the `handshape` command."""

import sys

from handshape.cli import main

sys.exit(main())
