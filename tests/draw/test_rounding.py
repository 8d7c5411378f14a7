import doctest

import pytest

from actviz.draw import rounding
from actviz.draw.rounding import for_people


def test_rounding_doctests_run():
    result = doctest.testmod(rounding)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("value, words", [
    (82.2886, "82"), (12345678.4, "12,345,678"), (9.5, "10"), (9.49, "9.5"), (1.0, "1"), (0.1, "0.1"),
    (0.000849, "0.00085"), (-0.0014, "-0.0014"), (0.996, "1"), (float("inf"), "infinite"),
])
def test_for_people_keeps_two_significant_digits_below_ten_and_whole_numbers_above(value, words):
    assert for_people(value) == words


def test_for_people_ranks_as_the_values_do():
    """The issue's case: 0.000849 was shown as ranking above 0.0014; rounded, the order still reads right."""
    values = [0.0014, 0.000849, 3.14159, 82.2886]
    shown = [float(for_people(v).replace(",", "")) for v in values]
    assert sorted(range(4), key=lambda i: shown[i]) == sorted(range(4), key=lambda i: values[i])
