"""Numbers for people: a value rounded so a reader takes it in at a glance.

A screen shows a number so that a person can compare it with its neighbours, not copy it: whole
numbers from 10 on (thousands separated), two significant digits below 10. The exact values stay
in the downloads (stats.csv, the .npz files, the data set's tables).
"""

from __future__ import annotations

import math


def for_people(value: float) -> str:
    """``value`` rounded for a reader: a whole number from 10 on, two significant digits below.

    >>> [for_people(v) for v in (82.2886, 1234.6, 3.14159, 9.96, 0.000849, 0.0014, -0.5, 0)]
    ['82', '1,235', '3.1', '10', '0.00085', '0.0014', '-0.5', '0']
    >>> for_people(float("nan"))
    'unknown'
    """
    value = float(value)
    if math.isnan(value):
        return "unknown"
    if math.isinf(value):
        return "infinite" if value > 0 else "minus infinite"
    if value == 0 or abs(value) >= 9.5:
        return f"{value:,.0f}"
    digits = 1 - math.floor(math.log10(abs(value)))  # two significant digits
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(probability: float) -> str:
    """A probability for people: whole percents, one decimal under 10%, never a 0% that is not 0.

    >>> [percent(p) for p in (0.973, 0.5, 0.042, 0.0004, 0.0, 0.9996, 1.0)]
    ['97%', '50%', '4.2%', 'under 0.1%', '0%', 'over 99.9%', '100%']
    """
    if probability <= 0 or probability >= 1:
        return f"{max(0.0, min(1.0, probability)):.0%}"
    if probability < 0.001:
        return "under 0.1%"
    if probability > 0.999:
        return "over 99.9%"
    return f"{probability:.1%}" if probability < 0.1 else f"{probability:.0%}"
