"""Checkers for the notebooks' exercises whose answer is code.

Each checker takes the student's function or class, runs it on cases whose
right answer is known, and either returns a short success message or raises
`ExerciseError` (an AssertionError) whose message says what went wrong and
gives a hint, never the answer. In a notebook:

    from resnet_nb.exercises import check_path_count
    def path_count(n, k): ...
    check_path_count(path_count)          # 'correct: ...' or an explanation

Convention for every checker here (notebooks 01-05 add theirs below):
`check_<name>(answer) -> str`, deterministic (seeded), seconds at most on a CPU,
and a test in tests/test_exercises.py showing a right answer passes and a
typical wrong one fails.
"""
from __future__ import annotations

import math


class ExerciseError(AssertionError):
    """A wrong answer: the message says what was checked and how the answer differs."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ExerciseError(message)


def _passed(message: str) -> str:
    return f"correct: {message}"


# --- 02: the residual formulation ------------------------------------------------------

def check_path_count(path_count) -> str:
    """Exercise 02.1: path_count(n, k) = the number of paths of length k through n blocks.

    Unrolled (Veit et al. 2016), n residual blocks give 2**n paths; a path of
    length k passes through the residual branches of k blocks and the shortcuts
    of the others, so there are C(n, k) of them.
    """
    for n in range(0, 9):
        for k in range(0, n + 1):
            got = path_count(n, k)
            _expect(got == math.comb(n, k),
                    f"path_count({n}, {k}) returned {got!r}. Hint: a path picks, at each of "
                    f"the {n} blocks, either the residual branch or the shortcut; how many "
                    f"ways are there to pick the branch in exactly {k} of them?")
        total = sum(path_count(n, k) for k in range(n + 1))
        _expect(total == 2 ** n, f"summed over k, path_count({n}, k) gives {total}, "
                                 f"not 2**{n} = {2 ** n}")
    return _passed("C(n, k) paths of length k; 2**n paths in all")
