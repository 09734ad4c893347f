"""Does an install from requirements.txt alone run the project? (`.ci/fresh_install` runs this in a venv
made by `make run` from a clean clone, with no dev packages.)

1. Every third-party module the project imports, at the top of a file or inside a function, is provided by
   a distribution that requirements.txt names (pinned): nothing may be there only because another package
   happened to bring it.
2. Every module of `sttproject` and `transcription` imports (management commands and migrations included).

Exit 1 with the list of what is missing.

    python tools/check_install.py
"""
from __future__ import annotations

import ast
import importlib
import importlib.metadata
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sttproject", "transcription")


def project_files() -> list[Path]:
    return [ROOT / "manage.py"] + sorted(f for package in PACKAGES for f in (ROOT / package).rglob("*.py"))


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def requirement_names() -> set[str]:
    """Distribution names requirements.txt lists, normalised (PEP 503)."""
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(normalise(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0]))
    return names


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def unlisted_imports() -> list[str]:
    """Third-party modules imported by the project whose distribution requirements.txt does not name."""
    own = set(PACKAGES) | {path.stem for path in project_files()}
    third_party = {name for path in project_files() for name in imported_names(path)
                   if name not in sys.stdlib_module_names and name not in own}
    providers = importlib.metadata.packages_distributions()
    listed = requirement_names()
    problems = []
    for name in sorted(third_party):
        distributions = {normalise(d) for d in providers.get(name, [])}
        if normalise(name) in distributions:  # (twisted: Twisted, not daphne, which has a plugin folder there)
            distributions = {normalise(name)}
        if not distributions:
            problems.append(f"{name}: not installed by requirements.txt")
        elif not distributions & listed:
            problems.append(f"{name}: installed only as a dependency of another package "
                            f"(add {' or '.join(sorted(distributions))} to requirements.txt, pinned)")
    return problems


def unimportable_modules() -> list[str]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sttproject.settings")
    os.environ.setdefault("STT_EMBEDDED_WORKER", "0")  # importing the ASGI application starts no job worker
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    problems = []
    for path in project_files()[1:]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        try:
            importlib.import_module(module)
        except Exception as exc:  # each failure listed, not only the first
            problems.append(f"{module}: {type(exc).__name__}: {exc}")
    return problems


def main() -> int:
    problems = unlisted_imports() + unimportable_modules()
    for problem in problems:
        print(problem, file=sys.stderr)
    modules = len(project_files()) - 1
    print(f"check_install: {modules} modules, {'FAILED' if problems else 'all imported'}; "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
