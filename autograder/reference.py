"""Reference code used as the answer: a solution cell that imports or calls the package function
the part asks the student to write earns nothing for that part.

Checked with `ast` on the student's solution cells only (the notebook's own setup cells import
casestudy for other purposes). Names are resolved through every import and plain assignment in
the notebook, so `from casestudy import eda as e` in one cell and `e.luminance(x)` in the
solution are found; so are a lookup by a computed name on a casestudy module (`getattr`,
`vars`, `__dict__`) and importing casestudy by a string (`importlib.import_module`, `__import__`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

PACKAGE = "casestudy"

FEATURES = {"casestudy.eda.image_features", "casestudy.eda.compute_features"}  # all of 02's parts at once
FORBIDDEN = {  # (assignment, grade_id of the solution cell): what would answer the part for them
    ("01_data", "label_of"): {"casestudy.data.scan_folder", "casestudy.data.index_folder",
                              "casestudy.data.build_index", "casestudy.data.update_index"},
    ("01_data", "stratified_split"): {"casestudy.data.assign_splits"},
    ("02_eda", "mean_colour"): {"casestudy.eda.mean_colour", *FEATURES},
    ("02_eda", "luminance"): {"casestudy.eda.luminance", "casestudy.eda.grey", *FEATURES},
    ("02_eda", "fft_magnitude"): {"casestudy.eda.fft_magnitude", "casestudy.eda.log_magnitude_spectrum",
                                  *FEATURES},
    ("02_eda", "radial_power_spectrum"): {"casestudy.eda.radial_power_spectrum",
                                          "casestudy.eda.radial_average", "casestudy.eda.ring_means",
                                          "casestudy.eda.radial_bins", *FEATURES},
    ("03_train", "make_detector"): {"casestudy.model.build_model"},
    ("03_train", "train_one_epoch"): {"casestudy.train.train_one_epoch", "casestudy.train.fit",
                                      "casestudy.train.train"},
    ("04_evaluate", "confusion_counts"): {"casestudy.evaluate.compute_metrics", "casestudy.evaluate.evaluate",
                                          "sklearn.metrics.confusion_matrix"},
    ("04_evaluate", "precision_recall_f1"): {
        "casestudy.evaluate.compute_metrics", "casestudy.evaluate.evaluate",
        "sklearn.metrics.precision_recall_fscore_support", "sklearn.metrics.precision_score",
        "sklearn.metrics.recall_score", "sklearn.metrics.f1_score", "sklearn.metrics.classification_report"},
    ("05_tsne", "penultimate_embeddings"): {"casestudy.model.penultimate",
                                            "casestudy.embed.extract_embeddings"},
    ("06_gradcam", "cam_from"): {"casestudy.explain.grad_cam"},
    ("07_report", "wilson_interval"): {"casestudy.evaluate.compute_metrics"},  # scipy/statsmodels are fine
}


@dataclass
class Use:
    """A solution cell that uses what it should write."""

    grade_id: str  # the solution cell
    name: str  # what it uses, e.g. casestudy.eda.luminance, or "a computed name on casestudy.eda"

    def reason(self) -> str:
        module = self.name.rsplit(".", 1)[0] if self.name.startswith(PACKAGE) else self.name
        if self.name.startswith(PACKAGE) and " " not in self.name:
            return f"{self.grade_id}: uses {module}'s answer ({self.name}); scored 0"
        return f"{self.grade_id}: uses {self.name}; scored 0"


def parse(source: str) -> ast.Module | None:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return None


def aliases(trees: list[ast.Module]) -> dict[str, str]:
    """Each name bound by an import or a plain `x = dotted.name` anywhere: the dotted path it means."""
    found: dict[str, str] = {}
    for _ in range(2):  # twice: an alias of an alias defined later still resolves
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        found[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for a in node.names:
                        found[a.asname or a.name] = f"{node.module}.{a.name}"
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
                        and isinstance(node.targets[0], ast.Name):
                    path = dotted(node.value, found)
                    if path and path.split(".")[0] in (PACKAGE, "sklearn"):
                        found[node.targets[0].id] = path
    return found


def dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """The dotted path an expression like `e.luminance` means, or None."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = dotted(node.value, names)
        return f"{base}.{node.attr}" if base else None
    return None


def text(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def uses(tree: ast.Module, names: dict[str, str], forbidden: set[str]) -> list[str]:
    """What of forbidden this solution cell imports, names or looks up dynamically."""
    modules = {f.rsplit(".", 1)[0] for f in forbidden}
    modules |= {m.rsplit(".", i)[0] for m in modules for i in range(m.count(".") + 1)}  # and parents
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute) and node.attr == "__dict__" \
                and dotted(node.value, names) in modules:
            found.append(f"a computed name on {dotted(node.value, names)}")
        elif isinstance(node, (ast.Attribute, ast.Name)):
            found.append(dotted(node, names) or "")
        elif isinstance(node, ast.Call) and node.args:
            func = dotted(node.func, names) or getattr(node.func, "id", "")
            owner, attr = dotted(node.args[0], names), text(node.args[1]) if len(node.args) > 1 else None
            if func in ("getattr", "vars") and owner in modules:
                named = func == "getattr" and attr
                found.append(f"{owner}.{attr}" if named else f"a computed name on {owner}")
            elif func in ("importlib.import_module", "__import__"):
                module = text(node.args[0])
                found.append(f"an import of {module} by name" if module in modules
                             else "" if module else "a module imported by a computed name")
    return list(dict.fromkeys(p for p in found if p in forbidden or p.startswith(("a ", "an "))))


def reference_uses(assignment: str, nb) -> list[Use]:
    """Each solution cell of nb that uses the package's (or a library's) answer to its own part."""
    cells = [c for c in nb.cells if c.get("cell_type") == "code"]
    trees = [t for t in (parse(c.get("source", "")) for c in cells) if t is not None]
    names = aliases(trees)
    found = []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        forbidden = FORBIDDEN.get((assignment, meta.get("grade_id")))
        tree = parse(cell.get("source", "")) if meta.get("solution") and forbidden else None
        if tree is not None:
            found += [Use(meta["grade_id"], name) for name in uses(tree, names, forbidden)]
    return found


def scoring_cell(nb, grade_id: str) -> str | None:
    """The grade_id of the test cell that scores a solution cell: the first one after it."""
    after = False
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == grade_id:
            after = True
        elif after and cell.get("cell_type") == "code" and meta.get("grade") and not meta.get("solution"):
            return meta["grade_id"]
    return None
