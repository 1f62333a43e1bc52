"""`python -m server [flags]`: the server; `python -m server --help` lists every setting."""

import sys

from .runner import main

sys.exit(main())
