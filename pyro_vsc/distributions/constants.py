"""Constants of the densities in this package."""

import math

#: ½ log 2π: minus the log-density of the standard Normal at 0.
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
