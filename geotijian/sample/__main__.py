"""``python -m geotijian.sample [folder] [--seed N] [--scale S]``: write the sample district."""

import sys

from .delivery import main

sys.exit(main())
