"""``python -m interp_sot.cli``: the ``interp-sot`` command, also under ``torchrun -m interp_sot.cli steer ...``."""

import sys

from interp_sot.cli import main

sys.exit(main())
