"""``python -m featurizer``."""

from __future__ import annotations

import sys

from featurizer.cli import main

sys.exit(main())
