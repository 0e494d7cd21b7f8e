"""Where the guard process starts: `python -I -S _guard.py [FD | --shared]` (process.py and
shared_guard.py start it by this path). The guard itself, and its protocol, is perview/guard.

Isolated and without site, the interpreter puts neither site-packages nor this folder on
sys.path: the user's environment stays out of the guard, and its start-up short. So the folder
that holds the perview package is added, after the standard library, and perview.guard alone is
imported from it (perview.sources would bring asyncio and the hub in).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from perview.guard import main

    sys.exit(main())
