"""Relay plumbing: opaque global IDs, the Node interface, and the registry behind ``node``/``nodes``.

A global ID is base64url("Type:uuid") without padding, where Type is the GraphQL type name. Every
entity type is declared with ``@node(Model)`` on top of ``@strawberry.type``::

    @node(models.Prompt)
    @strawberry.type
    class Prompt(Node):
        ...
        @classmethod
        def from_row(cls, row: models.Prompt) -> "Prompt": ...

which registers it: its global IDs resolve through ``node``/``nodes`` (to rows the caller may see,
by the generic ``Visible`` loader, so visibility follows ``app.services.access.READ_RULES``), and
other domains can turn a row of ``Model`` into it without importing it (``load_related``,
``wrap``) — that is what keeps domain packages free of import cycles. Type names come from the
classes: ``global_id(Prompt, id)`` and ``decode_id(gid, Prompt)`` accept the GraphQL class or
the model class.
"""
from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import strawberry
from strawberry.types.base import StrawberryOptional

from app.services import access

from .context import Info
from .errors import BadRequest, ClientError
from .loaders import Visible
from .pagination import MAX_PAGE


class NodeClass(Protocol):
    __name__: str

    @classmethod
    def from_row(cls, row: Any) -> Any: ...


N = TypeVar("N", bound=type)

#: GraphQL type name -> (node class, model class)
_BY_NAME: dict[str, tuple[Any, type]] = {}
#: model class -> node class
_BY_MODEL: dict[type, Any] = {}


def node(model: type) -> Callable[[N], N]:
    """Class decorator (above ``@strawberry.type``): register a Node type for rows of ``model``."""

    def register(cls: N) -> N:
        name = cls.__strawberry_definition__.name  # type: ignore[attr-defined]
        if name in _BY_NAME and _BY_NAME[name][0] is not cls:
            raise RuntimeError(f"two node types are named {name}")
        _BY_NAME[name] = (cls, model)
        _BY_MODEL[model] = cls
        return cls

    return register


def type_name(kind: type) -> str:
    """The GraphQL type name of a node class, or of the node class registered for a model class."""
    definition = getattr(kind, "__strawberry_definition__", None)
    if definition is not None:
        return str(definition.name)
    cls = _BY_MODEL.get(kind)
    if cls is None:
        raise LookupError(f"{kind.__name__} is not a registered node type (decorate its type with @node)")
    return str(cls.__strawberry_definition__.name)


def node_types() -> list[Any]:
    """Every registered node class (the schema lists them, as some are reachable only through Node)."""
    return [cls for cls, _ in _BY_NAME.values()]


# ------------------------------------------------------------------ global IDs


def encode_gid(name: str, id_: uuid.UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{name}:{id_}".encode()).decode().rstrip("=")


def global_id(kind: type, id_: uuid.UUID) -> strawberry.ID:
    """The global ID of row ``id_`` of a node type (given as its GraphQL or its model class)."""
    return strawberry.ID(encode_gid(type_name(kind), id_))


def decode_gid(gid: str | None) -> tuple[str, uuid.UUID] | None:
    """(type name, uuid) or None when the ID is not one of ours. Never raises."""
    if not gid or not isinstance(gid, str) or len(gid) > 200:
        return None
    try:
        padded = gid + "=" * (-len(gid) % 4)
        raw = base64.urlsafe_b64decode(padded.encode()).decode()
        name, _, rest = raw.partition(":")
        if not name or not rest:
            return None
        return name, uuid.UUID(rest)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def decode_id(gid: str | None, *kinds: type) -> uuid.UUID | None:
    """The uuid of a global ID of one of the given node types (GraphQL or model classes), else None."""
    decoded = decode_gid(gid)
    if decoded is None or decoded[0] not in {type_name(k) for k in kinds}:
        return None
    return decoded[1]


#: Stands for an ID that is not ours: it matches no row, so services report NOT_FOUND and filters match nothing.
NO_ID = uuid.UUID(int=0)


def input_id(gid: str | None, *kinds: type) -> uuid.UUID | None:
    """For optional ID inputs: None when not given; ``NO_ID`` when given but not an ID of ``kinds``."""
    if gid is None:
        return None
    return decode_id(gid, *kinds) or NO_ID


# ------------------------------------------------------------------ the Node interface


@strawberry.interface(description="An object with a global ID.")
class Node:
    id: strawberry.ID


def wrap(row: Any) -> Any:
    """The node object of a row (of a registered model); None for None."""
    if row is None:
        return None
    return _BY_MODEL[type(row)].from_row(row)


async def load_related(info: Info, model: type, id_: uuid.UUID | None) -> Any:
    """The node object of ``model``'s row ``id_``, batched with the request's other loads; None when
    missing. No visibility check: for relations of an object the caller already sees (Prompt.project)."""
    if id_ is None:
        return None
    return wrap(await info.context.by_id(model).load(id_))


def related(model: type, attribute: str, *, description: str | None = None, seen_with_owner: bool = False) -> Any:
    """A field that is the ``model`` row its object's row points at through ``attribute`` (e.g.
    ``prompt: PromptRef = related(models.Prompt, "prompt_id")``), batched. The field's type is its
    annotation.

    What the field returns is governed by the rule of what it returns, whatever the path: the row
    goes through the ``Visible`` loader (``access.READ_RULES``), exactly as ``node(id)`` would. A row the
    caller may not see is null for a nullable field, and a FORBIDDEN error for a non-null one (which
    GraphQL then propagates: an Execution read with a key that lacks PROMPTS_READ gets no prompt).
    ``seen_with_owner``: whoever may see the owning object may see this one by definition (a member's
    user, to whoever may see the members — the removal of a member shows the user removed).
    """

    async def resolve(root: strawberry.Parent[Any], info: Info):  # no return type: the annotation gives it
        id_ = getattr(root.row, attribute)
        if id_ is None:
            return None
        if seen_with_owner:
            return await load_related(info, model, id_)
        row = await info.context.loader(Visible, model).load(id_)
        if row is not None:
            return wrap(row)
        if isinstance(info.return_type, StrawberryOptional):
            return None
        if await info.context.by_id(model).load(id_) is None:  # gone meanwhile: say so, reveal nothing else
            raise ClientError(f"This {model.__name__} no longer exists.", "NOT_FOUND")
        raise ClientError(access.read_denied_message(info.context.principal, model), "FORBIDDEN")

    resolve.__name__ = f"related_{attribute}"
    return strawberry.field(resolver=resolve, description=description)


async def resolve_nodes(info: Info, ids: Sequence[str]) -> list[Any]:
    """Global IDs -> visible node objects (None where missing or not visible), one batch per type."""
    by_type: dict[str, list[tuple[int, uuid.UUID]]] = {}
    out: list[Any] = [None] * len(ids)
    for i, gid in enumerate(ids):
        decoded = decode_gid(gid)
        if decoded is None or decoded[0] not in _BY_NAME:
            continue
        by_type.setdefault(decoded[0], []).append((i, decoded[1]))
    for name, items in by_type.items():
        cls, model = _BY_NAME[name]
        rows = await info.context.loader(Visible, model).load_many([u for _, u in items])
        for (i, _), row in zip(items, rows, strict=True):
            out[i] = cls.from_row(row) if row is not None else None
    return out


@strawberry.type
class NodeQuery:
    """Root fields of no domain: any object by its global ID."""

    @strawberry.field(description="Any object by its global ID; null when it does not exist or is not visible.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return (await resolve_nodes(info, [id]))[0]

    @strawberry.field(description=f"Objects by global IDs, in order; null for each one not found (at most {MAX_PAGE}).")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_PAGE:
            raise BadRequest(f"at most {MAX_PAGE} ids per request; {len(ids)} given")
        return await resolve_nodes(info, ids)
