"""What a student's feedback page shows of a test cell: its visible tests, and of the hidden
ones only their result (the cell's name, points and the error's message), never their source.

HideHiddenTests runs in nbgrader's generate_feedback after GetGrades, on the autograded copy.
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n?", re.S)


def hide_hidden_tests(source: str) -> str:
    """A test cell's source with each hidden-test region replaced by one comment line."""
    return HIDDEN.sub("# ... hidden tests: their source is not shown; their result is below\n", source)


def result_only(output: dict) -> dict:
    """An error output as its exception's name and message, without the traceback (which quotes the
    hidden test's lines)."""
    if output.get("output_type") != "error":
        return output
    message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip(": ")
    return {"output_type": "stream", "name": "stdout", "text": f"{message}\n"}


class HideHiddenTests(Preprocessor):
    """Strip hidden tests' source and tracebacks from every graded test cell."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        flags = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and flags.get("grade") and not flags.get("solution"):
            hidden = HIDDEN.search(cell.source) is not None
            cell.source = hide_hidden_tests(cell.source)
            if hidden:
                cell.outputs = [result_only(output) for output in cell.get("outputs", [])]
        return cell, resources
