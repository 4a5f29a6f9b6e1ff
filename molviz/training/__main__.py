"""``python -m molviz.training train|eval|decode|fit``: the training commands alone (bare GPU boxes)."""
import sys

from molviz.training._cli import main

sys.exit(main())
