"""The layout stays as docs describe it: no import cycle in transcription/, small classes in the core."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "transcription"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_at_load(path: Path) -> set[str]:
    """Project modules imported when `path` is loaded (not inside functions, not for type checking)."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else []:
            if isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - sub.level + 1] + ([base] if base else []))
                if base.startswith("transcription"):
                    found.add(base)
                    found.update(f"{base}.{alias.name}" for alias in sub.names)
            elif isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names if a.name.startswith("transcription"))
    return found


def test_transcription_has_no_import_cycle():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    graph = {name: {i for i in imports_at_load(path) if i in modules and i != name} for name, path in modules.items()}
    # A package's __init__ importing its own modules is how packages work: not a cycle between layers.
    for name in graph:
        graph[name] = {i for i in graph[name] if not (name.startswith(i + ".") and modules[i].name == "__init__.py")}
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()

    for name in sorted(graph):
        visit(name)
    assert cycles == []


def test_the_session_core_is_made_of_small_parts():
    """A guide, not a rule to game: no class of realtime/ much over 150 lines."""
    for path in (PACKAGE / "realtime").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno - node.lineno <= 180, (path.name, node.name, node.end_lineno - node.lineno)
