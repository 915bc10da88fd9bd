"""geotijian (体检): urban check-up toolkit for Chinese districts, towns and communities.

Community check-up units, 15-minute life-circle coverage on the walk network, indicators
by unit/town/district, the problem ledger and the 一表三清单, and report maps.
"""

from . import settings
from .errors import (
    ConfigError,
    CoordinateWarning,
    FeasibilityError,
    GeotijianError,
    LayerError,
    NetworkError,
    RasterError,
    RepairWarning,
)
from .io import check_gcj_shift, convert_coords, gcj02_to_wgs84, read_layer, wgs84_to_gcj02
from .model import StudyData

__version__ = "0.1.0"
