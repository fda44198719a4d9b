"""Print the package's structure numbers: file sizes, longest functions, imports, defaults.

Issue 17's before/after measure, from the source alone (``ast``, no import of cohesiv):

- the size of every module of ``cohesiv/`` in lines, and the total;
- the 10 longest functions (``def`` to its last line, nested functions counted on their own);
- the count of function-level imports (``import`` inside a function body) and of
  ``except ImportError`` handlers, with the modules that hold the most;
- the number of places each default is written:

  - the responsibility temperature ``2.0``: a parameter default, a dataclass field, an argparse
    ``default=`` of a ``--...temperature`` flag, a ``temperature=2.0`` keyword or a
    ``*TEMPERATURE*`` constant;
  - the DIS preset: string literals ``"ultrafast-fs1"`` (the default preset) and tuples that list
    the preset names;
  - the read-out threshold keys ``tau_h``, ``tau_o``, ``tau_r``, ``tau_g``, ``open_o``: string
    literals and identifiers (attributes, keywords, parameters, names), with the files they are in,
    and the functions that use both ``tau_o`` and ``tau_r`` (each applies an object-mask rule);
  - the command-line flags that write a default of their own: an ``add_argument(default=...)``
    literal (a number, a string or a list; not None or a bool), and a help text that spells a
    number as its default by hand (``"(default 128)"``); a flag that defaults to None and shows
    the config's value (``cohesiv.config.help_default``) counts for neither.

Docstrings are not counted. Run from the repository root::

    python tools/structure.py            # cohesiv/
    python tools/structure.py --root DIR
"""

from __future__ import annotations

import argparse
import ast
import re
from collections import Counter
from pathlib import Path

KEYS = ("tau_h", "tau_o", "tau_r", "tau_g", "open_o")
PRESET_NAMES = {"ultrafast", "fast", "medium", "ultrafast-fs1", "fast-fs1"}
DEFAULT_PRESET = "ultrafast-fs1"


def _docstring_ids(tree: ast.AST) -> set[int]:
    """Ids of the Constant nodes that are docstrings."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    out.add(id(body[0].value))
    return out


def _is_two(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value == 2


def _temperature_defaults(tree: ast.AST) -> list[int]:
    """Line numbers where the responsibility temperature's default 2.0 is written."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults) :], a.defaults))
            pairs += [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            lines += [d.lineno for k, d in pairs if "temperature" in k.arg and _is_two(d)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if "temperature" in node.target.id.lower() and _is_two(node.value):
                lines.append(node.lineno)
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any("temperature" in n.lower() for n in names) and _is_two(node.value):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call):
            flag = node.args[0] if node.args else None
            is_flag = isinstance(flag, ast.Constant) and isinstance(flag.value, str)
            for kw in node.keywords:
                if kw.arg == "temperature" and _is_two(kw.value):
                    lines.append(node.lineno)
                elif kw.arg == "default" and is_flag and "temperature" in flag.value:
                    if _is_two(kw.value):
                        lines.append(node.lineno)
    return sorted(lines)


_HAND_DEFAULT = re.compile(r"default:? -?\d")


def _cli_defaults(tree: ast.AST) -> tuple[list[int], list[int]]:
    """Lines of ``add_argument`` calls with a literal ``default=``, and of help texts spelling a default."""
    literal, spelled = [], []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "add_argument":
            continue
        for kw in node.keywords:
            v = kw.value
            if kw.arg == "default":
                if isinstance(v, (ast.List, ast.Tuple)) or (
                    isinstance(v, ast.Constant) and v.value is not None and not isinstance(v.value, bool)
                ):
                    literal.append(node.lineno)
            elif kw.arg == "help":
                texts = [
                    n.value for n in ast.walk(v) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                ]
                if any(_HAND_DEFAULT.search(t) for t in texts):
                    spelled.append(node.lineno)
    return literal, spelled


def _identifiers(tree: ast.AST) -> list[tuple[str, int]]:
    """(name, line) of every identifier: names, attributes, keywords, parameters, fields."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.append((node.id, node.lineno))
        elif isinstance(node, ast.Attribute):
            out.append((node.attr, node.lineno))
        elif isinstance(node, ast.keyword) and node.arg:
            out.append((node.arg, node.value.lineno))
        elif isinstance(node, ast.arg):
            out.append((node.arg, node.lineno))
    return out


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _function_import_nodes(tree: ast.AST) -> dict[int, bool]:
    """Import nodes inside functions (each once), mapped to: does it import cohesiv's own code."""
    out = {}
    for fn in _functions(tree):
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom):
                out[id(node)] = node.level > 0 or (node.module or "").split(".")[0] == "cohesiv"
            elif isinstance(node, ast.Import):
                out[id(node)] = any(a.name.split(".")[0] == "cohesiv" for a in node.names)
    return out


def _import_error_handlers(tree: ast.AST) -> int:
    n = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = [node.type] if not isinstance(node.type, ast.Tuple) else node.type.elts
            if any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in names):
                n += 1
    return n


def main(argv: list[str] | None = None) -> None:
    """Print the numbers for the package under ``--root``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="cohesiv", help="package folder to measure (default: cohesiv)")
    args = p.parse_args(argv)
    root = Path(args.root)
    files = sorted(root.rglob("*.py"))

    sizes: dict[str, int] = {}
    funcs: list[tuple[int, str]] = []
    fimports: Counter[str] = Counter()
    own_imports = 0
    import_errors: Counter[str] = Counter()
    temp: list[str] = []
    preset_literals: list[tuple[str, int]] = []
    preset_lists: list[tuple[str, int]] = []
    key_literals: dict[str, Counter[str]] = {k: Counter() for k in KEYS}
    key_idents: dict[str, Counter[str]] = {k: Counter() for k in KEYS}
    rule_functions: list[str] = []
    cli_literal: list[str] = []
    cli_spelled: list[str] = []
    for path in files:
        rel = str(path)
        text = path.read_text()
        sizes[rel] = len(text.splitlines())
        tree = ast.parse(text, filename=rel)
        docs = _docstring_ids(tree)
        for fn in _functions(tree):
            funcs.append((fn.end_lineno - fn.lineno + 1, f"{rel}:{fn.lineno} {fn.name}"))
        nodes = _function_import_nodes(tree)
        fimports[rel] = len(nodes)
        own_imports += sum(nodes.values())
        import_errors[rel] = _import_error_handlers(tree)
        temp += [f"{rel}:{line}" for line in _temperature_defaults(tree)]
        lit, spelled = _cli_defaults(tree)
        cli_literal += [f"{rel}:{line}" for line in lit]
        cli_spelled += [f"{rel}:{line}" for line in spelled]
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if node.value == DEFAULT_PRESET:
                    preset_literals.append((rel, node.lineno))
                if node.value in KEYS:
                    key_literals[node.value][rel] += 1
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                vals = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if len(vals & PRESET_NAMES) >= 3:
                    preset_lists.append((rel, node.lineno))
        for name, _ in _identifiers(tree):
            if name in KEYS:
                key_idents[name][rel] += 1
        for fn in _functions(tree):
            used = {n for n, _ in _identifiers(fn)}
            used |= {
                n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
            if {"tau_o", "tau_r"} <= used:
                rule_functions.append(f"{rel}:{fn.lineno} {fn.name}")

    print(f"== file sizes (lines), {len(files)} files, {sum(sizes.values())} lines in {root}/")
    for rel, n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{n:6d}  {rel}")

    print("\n== 10 longest functions (lines)")
    for n, where in sorted(funcs, key=lambda t: (-t[0], t[1]))[:10]:
        print(f"{n:6d}  {where}")

    nfiles = sum(1 for v in fimports.values() if v)
    print(
        f"\n== function-level imports: {sum(fimports.values())} in {nfiles} files, {own_imports} of cohesiv's own"
    )
    for rel, n in fimports.most_common(10):
        if n:
            print(f"{n:6d}  {rel}")
    print(f"== except ImportError/ModuleNotFoundError handlers: {sum(import_errors.values())}")
    for rel, n in import_errors.most_common():
        if n:
            print(f"{n:6d}  {rel}")

    print("\n== places each default is written")
    print(f"responsibility temperature 2.0: {len(temp)}")
    for w in temp:
        print(f"        {w}")
    print(f"DIS default preset literal {DEFAULT_PRESET!r}: {len(preset_literals)}")
    for rel, line in sorted(preset_literals):
        print(f"        {rel}:{line}")
    print(f"DIS preset name lists: {len(preset_lists)}")
    for rel, line in sorted(preset_lists):
        print(f"        {rel}:{line}")
    print("read-out threshold keys (string literals / identifiers, in files):")
    for k in KEYS:
        lit, ide = key_literals[k], key_idents[k]
        nfiles = len(set(lit) | set(ide))
        print(f"  {k:7s} literals {sum(lit.values()):3d}  identifiers {sum(ide.values()):3d}  files {nfiles}")
    all_files = sorted({f for k in KEYS for f in (*key_literals[k], *key_idents[k])})
    print(f"  files spelling a key: {len(all_files)}: {', '.join(all_files)}")
    print(f"functions that use both tau_o and tau_r (object-mask rules): {len(rule_functions)}")
    for w in rule_functions:
        print(f"        {w}")
    print(f"CLI flags with a literal default of their own (add_argument default=...): {len(cli_literal)}")
    for w in cli_literal:
        print(f"        {w}")
    print(f"CLI help texts that spell a default number by hand: {len(cli_spelled)}")
    for w in cli_spelled:
        print(f"        {w}")


if __name__ == "__main__":
    main()
