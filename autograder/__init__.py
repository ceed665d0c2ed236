"""Instructor tooling around nbgrader: release the exercises, grade a class, check one notebook,
export the final grades.

`autograder release` regenerates exercises/ from solutions/ (refusing if a solution fails its
own tests), `autograder grade SUBMISSIONS` autogrades a class into grades.csv and per-student
HTML feedback, `autograder check NOTEBOOK` shows a student their visible-test score, and
`autograder export` writes the gradebook's final grades as a CSV for an LMS. nbgrader and its
companions come with the `grading` extra; this module and `autograder --help` need none of them.
"""

from casestudy import __version__  # one distribution, one version

__all__ = ["GradingError", "__version__"]


class GradingError(Exception):
    """A problem the instructor must fix, reported in one line."""
