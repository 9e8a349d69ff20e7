"""One command for every benchmark: ``bench/run.py WORKLOAD [options]`` (``make bench ARGS="WORKLOAD ..."``).

The side-by-side workloads (resolve, dashboard, large) are bench/compare.py's; every other benchmark is
a script in bench/ (found here by its ``__main__`` block, described by its docstring's first sentence)
run with the options given. ``bench/run.py WORKLOAD --help`` shows a workload's options.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Modules of bench/ that are not benchmarks of their own.
NOT_WORKLOADS = {"run", "compare", "peers", "__init__"}


def _summary(path: Path) -> str:
    """The first sentence of a script's docstring, on one line."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text()), clean=True) or ""
    except (OSError, SyntaxError):
        return ""
    text = " ".join(doc.split("\n\n", 1)[0].split()).replace("``", "")
    text = text.split(". ", 1)[0].rstrip(".").removeprefix("Benchmark of ")
    return text if len(text) <= 100 else text[:99].rsplit(" ", 1)[0] + " ..."


def scripts() -> dict[str, Path]:
    """{name: path} of the benchmark scripts in bench/ (those with a ``__main__`` block)."""
    out = {}
    for path in sorted(BENCH.glob("*.py")):
        if path.stem in NOT_WORKLOADS:
            continue
        try:
            if 'if __name__ == "__main__":' in path.read_text():
                out[path.stem] = path
        except OSError:
            continue
    return out


def usage() -> str:
    from bench.compare import WORKLOADS

    lines = ["usage: make bench ARGS=\"WORKLOAD [options]\"   (or: .venv/bin/python bench/run.py WORKLOAD [options])",
             "",
             "Side by side with the peers on the same PostgreSQL (bench/compare.py; wrk, 16 connections, alternating",
             "rounds; prints medians, p50/p99, CPU ms per request of the server and of PostgreSQL, and the ratios):"]
    lines += [f"  {name:<17} {text}" for name, text in WORKLOADS.items()]
    lines += ["", "Prompt Studio alone (scripts in bench/):"]
    lines += [f"  {name:<17} {_summary(path)}" for name, path in scripts().items()]
    lines += ["",
              "Options of a workload: make bench ARGS=\"WORKLOAD --help\". Examples:",
              "  make bench ARGS=\"resolve --rounds 3 --duration 20\"",
              "  make bench ARGS=\"dashboard --rounds 5\"",
              "  make bench ARGS=\"otlp_ingest --rounds 3\"",
              "",
              "The first side-by-side run downloads PostGraphile 4.14.1 from the npm registry (and, for resolve,",
              "Arize Phoenix 20.26.1 from PyPI unless --phoenix VENV is given) into .promptstudio-bench/peers/, where",
              "it stays cached. wrk comes from the system: apt-get install wrk (without it a slower Python load",
              "generator is used, and the output says so)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help", "list"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    from bench.compare import WORKLOADS

    if name in WORKLOADS:
        from bench.compare import main as compare_main

        return compare_main([name, *rest])
    found = scripts()
    if name.removesuffix(".py") in found:
        return subprocess.call([sys.executable, str(found[name.removesuffix(".py")]), *rest], cwd=ROOT)
    print(f"unknown workload {name!r}\n", file=sys.stderr)
    print(usage(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
