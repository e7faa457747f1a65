from __future__ import annotations

import sys

from ddpipe.cli import main

sys.exit(main())
