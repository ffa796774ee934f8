import sys

from ringwell.cli import main

sys.exit(main())
