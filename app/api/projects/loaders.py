"""Per-request loaders of the projects domain."""
from __future__ import annotations

from app.db import models

from ..core.child_pages import ChildPageLoader
from ..core.loaders import ManyByKeyLoader


class MembersPage(ChildPageLoader):
    """Project.members, in the order they were added."""

    model = models.ProjectMember
    parent_col = models.ProjectMember.project_id
    sort_col = models.ProjectMember.added_at
    id_col = models.ProjectMember.user_id


class CredentialsByProject(ManyByKeyLoader):
    model = models.ProviderCredential
    key_column = "project_id"
    order_by = (models.ProviderCredential.provider,)
