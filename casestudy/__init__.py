"""Who's the Imposter? The reference package of the course: one module per stage.

    from casestudy import data, train, evaluate, embed, explain
"""

__version__ = "0.1.0"


class CaseStudyError(Exception):
    """A problem the user can fix; the CLI prints it as one line, without a traceback."""
