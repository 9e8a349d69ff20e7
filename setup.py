"""Packaging detail pyproject.toml cannot express: the top-level alembic/ directory ships inside the
package as ``app.migrations``, so that an installed ``promptstudio`` (``pip install .``) can migrate."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["app", "app.*"]) + ["app.migrations", "app.migrations.versions"],
    package_dir={"app.migrations": "alembic"},
)
