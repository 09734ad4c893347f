"""The layout stays as docs describe it: layers that only import downwards (so no import cycle, counting
imports inside functions and those for type checking), and no class over 200 lines."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "transcription"

# Lowest first. A module may import its own layer's modules and those of the layers below, never above.
LAYERS = [
    ("vocabulary", ["protocol", "metrics", "signals", "audio", "languages"]),
    ("data", ["models", "backends"]),
    ("plug-ins", ["engines", "speakers", "translation"]),
    ("data services", ["recording", "services", "selectors", "exports", "media", "forms", "auth", "sources.decoding"]),
    ("background", ["jobs", "refine", "voices", "intake", "admission"]),
    ("session core", ["realtime"]),
    ("sources", ["sources", "compat"]),
    ("edges", ["views", "api", "admin", "urls", "management", "templatetags", "workers", "checks", "apps", "client",
               "migrations", "heavy"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    inside = module.removeprefix("transcription.")
    best = None
    for number, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if inside == prefix or inside.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (number, len(prefix))
    assert best is not None or module == "transcription", f"{module} belongs to no layer: add it to LAYERS"
    return best[0] if best else len(LAYERS)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Project modules `path` imports anywhere: at load, inside functions, for type checking."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # `from x import y`: the module x.y if there is one, else x
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def test_layers_only_import_downwards():
    modules = project_modules()
    upward = [(name, imported) for name, path in modules.items() for imported in imports_of(path, set(modules))
              if layer_of(imported) > layer_of(name)]
    assert upward == [], "imports that reach up a layer: " + ", ".join(f"{a} -> {b}" for a, b in upward)


def test_there_is_no_import_cycle_counting_every_import():
    modules = project_modules()
    graph = {name: imports_of(path, set(modules)) for name, path in modules.items()}
    for name, path in modules.items():  # a package's __init__ gathering its own modules is not a cycle
        if path.name == "__init__.py":
            graph[name] = {i for i in graph[name] if not i.startswith(name + ".")}
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


def test_no_class_is_over_200_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 200:
                long.append((str(path.relative_to(PACKAGE)), node.name, node.end_lineno - node.lineno + 1))
    assert long == []


def test_the_session_core_is_made_of_small_parts():
    """A guide, not a rule to game: no class of realtime/ much over 150 lines."""
    for path in (PACKAGE / "realtime").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno - node.lineno <= 180, (path.name, node.name, node.end_lineno - node.lineno)


def test_every_mutation_finds_its_text_exactly_once():
    """`make mutations` stops at the first mutation whose text is gone (a refactor moved it): checked here,
    in the fast loop, instead of half an hour into CI."""
    import sys

    sys.path.insert(0, str(PACKAGE.parent / "tests"))
    import mutations

    missing = [(mu.name, name, (PACKAGE.parent / name).read_text().count(find))
               for mu in mutations.MUTATIONS for name, find, _ in mu.edits
               if (PACKAGE.parent / name).read_text().count(find) != 1]
    assert missing == []
