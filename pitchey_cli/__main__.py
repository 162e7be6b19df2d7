import sys

from pitchey_cli import main

sys.exit(main())
