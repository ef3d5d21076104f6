"""Count function parameters whose annotation mentions ``Any`` (issue 21, item 5: target <= 8%).

Counts every parameter of every function and method under ``interp_sot/`` except ``self`` and ``cls``; a
parameter counts as "Any" when its annotation's source text contains ``Any`` (so ``dict[str, Any]`` counts).

    python scripts/count_any.py            # total
    python scripts/count_any.py --files    # and per file, most first
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path


def count(root: Path) -> tuple[Counter[str], Counter[str]]:
    """(parameters with an Any annotation, all parameters), per file."""
    with_any: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for path in sorted(root.rglob("*.py")):
        name = str(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(p for p in (a.vararg, a.kwarg) if p is not None)]
            for arg in params:
                if arg.arg in ("self", "cls"):
                    continue
                total[name] += 1
                if arg.annotation is not None and "Any" in ast.unparse(arg.annotation):
                    with_any[name] += 1
    return with_any, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="interp_sot", type=Path, help="package folder (interp_sot)")
    parser.add_argument("--files", action="store_true", help="also print the count of every file with one")
    args = parser.parse_args()
    with_any, total = count(args.root)
    if args.files:
        for name, n in sorted(with_any.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{n:4d}/{total[name]:<4d} {name}")
    n_any, n_all = sum(with_any.values()), sum(total.values())
    print(f"{n_any}/{n_all} = {100 * n_any / max(n_all, 1):.1f}%")


if __name__ == "__main__":
    main()
