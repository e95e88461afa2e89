import math

import pytest

from meterline.quantile import quantile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([3.0, 1.0, 2.0], 0.5, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 0.99, 4.0),
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),
        ([5.0], 0.99, 5.0),
        (list(map(float, range(101))), 0.99, 99.0),
    ],
)
def test_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert quantile(values, q) == expected


def test_no_values_is_nan() -> None:
    assert math.isnan(quantile([], 0.5))
