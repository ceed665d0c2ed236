"""nbgrader's settings for this repository: solutions/ is the source, exercises/ the release.

With them, plain `nbgrader generate_assignment 01_data` run here writes exercises/01_data/;
`autograder release` does the same for every assignment after checking each solution.
"""

c = get_config()  # noqa: F821 (traitlets defines it when it reads this file)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.db_url = "sqlite:///.nbgrader/gradebook.db"  # scratch: grading keeps its own
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "data", "runs"]
