"""Checks of the values users pass in, shared by the modules that take them."""
from __future__ import annotations

import math
import numbers


def is_int(value) -> bool:
    """An integer (numpy's too), not a bool and not 2.5: sizes and steps are counted."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """A finite number, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
