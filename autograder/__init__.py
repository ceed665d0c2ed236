"""Instructor tooling around nbgrader: release the exercises, grade a class, check one notebook.

`autograder release` regenerates exercises/ from solutions/ (refusing if a solution fails its
own tests), `autograder grade SUBMISSIONS` autogrades a class into grades.csv and per-student
HTML feedback, and `autograder check NOTEBOOK` shows a student their visible-test score.
"""


class GradingError(Exception):
    """A problem the instructor must fix, reported in one line."""
