"""Root fields that belong to no domain: node and nodes."""
from __future__ import annotations

import strawberry
from strawberry.types import Info

from .relay import MAX_PAGE, Node, resolve_nodes


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global ID; null when it does not exist or is not visible.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return (await resolve_nodes(info, [id]))[0]

    @strawberry.field(description=f"Objects by global IDs, in order; null for each one not found (at most {MAX_PAGE}).")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_PAGE:
            from .errors import BadRequest

            raise BadRequest(f"at most {MAX_PAGE} ids per request; {len(ids)} given")
        return await resolve_nodes(info, ids)
