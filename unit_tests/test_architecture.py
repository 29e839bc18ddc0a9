"""The package layout keeps its layers, and docs/architecture.md names exactly the modules that exist."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "destination_iterable"
DOC = (REPO / "docs" / "architecture.md").read_text()


def modules() -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_every_module_is_named_in_the_architecture_doc():
    missing = [m for m in modules() if not m.endswith("__init__.py") and f"`{m}`" not in DOC]
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_the_architecture_doc_names_no_module_that_does_not_exist():
    named = set(re.findall(r"`((?:[a-z_]+/)?[a-z_]+\.py)`", DOC))
    existing = set(modules()) | {"main.py", "setup.py"}
    assert not named - existing, f"docs/architecture.md names modules that do not exist: {named - existing}"


def test_only_the_iterable_layer_speaks_http():
    offenders = [m for m in modules() if not m.startswith("iterable/")
                 and any(i.split(".")[0] in ("requests", "urllib3") for i in imports(PACKAGE / m))]
    assert not offenders, offenders


def test_only_the_airbyte_layer_knows_airbyte():
    offenders = [m for m in modules() if not m.startswith("airbyte/") and m not in ("__init__.py", "run.py")
                 and any(i.startswith("airbyte_cdk") or i.startswith("airbyte_protocol")
                         or i.startswith("destination_iterable.airbyte") for i in imports(PACKAGE / m))]
    assert not offenders, offenders


def test_member_rules_depend_on_no_other_layer():
    offenders = [m for m in modules() if m.startswith("members/")
                 and any(i.startswith("destination_iterable.") and not i.startswith("destination_iterable.members")
                         and i != "destination_iterable.iterable.limits" for i in imports(PACKAGE / m))]
    assert not offenders, offenders


def test_no_private_attribute_of_requests_or_urllib3_is_used():
    pattern = re.compile(r"_get_conn|_put_conn|urllib3\._collections|\._content\b")
    hits = [m for m in modules() if pattern.search((PACKAGE / m).read_text())]
    assert not hits, hits
