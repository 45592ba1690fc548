"""`python -m audiencesync.cli`: the command, as the local stack starts its processes."""

import sys

from audiencesync.cli.main import main

sys.exit(main())
