"""Every exercise checker accepts a right answer and rejects a typical wrong one."""
import math

import pytest

from resnet_nb.exercises import ExerciseError, check_path_count


def test_path_count():
    assert check_path_count(lambda n, k: math.comb(n, k)).startswith("correct")
    with pytest.raises(ExerciseError, match="Hint"):
        check_path_count(lambda n, k: n * k)          # not a count of choices
    with pytest.raises(ExerciseError):
        check_path_count(lambda n, k: 2 ** k)
