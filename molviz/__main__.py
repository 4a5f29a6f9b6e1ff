import sys

from molviz.cli import main

sys.exit(main())
