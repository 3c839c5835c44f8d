"""``python -m jaxgen ...`` is the same as the ``jaxgen`` command."""
import sys

from jaxgen.cli import main

sys.exit(main())
