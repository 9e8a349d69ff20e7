"""Relay plumbing: opaque global IDs, the Node interface and its registry, keyset connections.

Global IDs are base64("Type:uuid"). ``node``/``nodes`` resolve through ``NODE_REGISTRY``: each
entity type registers one async batch function (ids -> visible objects), so there is no if/elif
chain and ``nodes(ids)`` batches per type.
"""
from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.types import Info

T = TypeVar("T")


def encode_gid(type_name: str, id_: uuid.UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{id_}".encode()).decode().rstrip("=")


def decode_gid(gid: str | None) -> tuple[str, uuid.UUID] | None:
    """(type name, uuid) or None when the ID is not one of ours. Never raises."""
    if not gid or not isinstance(gid, str) or len(gid) > 200:
        return None
    try:
        padded = gid + "=" * (-len(gid) % 4)
        raw = base64.urlsafe_b64decode(padded.encode()).decode()
        type_name, _, rest = raw.partition(":")
        if not type_name or not rest:
            return None
        return type_name, uuid.UUID(rest)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def decode_gid_of(gid: str | None, *type_names: str) -> uuid.UUID | None:
    """The uuid of a global ID of one of the given types, else None."""
    decoded = decode_gid(gid)
    if decoded is None or decoded[0] not in type_names:
        return None
    return decoded[1]


@strawberry.interface(description="An object with a global ID.")
class Node:
    id: strawberry.ID


#: type name -> async fn(info, [uuid]) -> [object or None] (None when missing or not visible)
NodeBatchLoader = Callable[[Info, Sequence[uuid.UUID]], Awaitable[Sequence[Any | None]]]
NODE_REGISTRY: dict[str, NodeBatchLoader] = {}


def register_node(type_name: str):
    """Decorator: register the batch loader that resolves global IDs of ``type_name``."""

    def deco(fn: NodeBatchLoader) -> NodeBatchLoader:
        NODE_REGISTRY[type_name] = fn
        return fn

    return deco


async def resolve_nodes(info: Info, ids: Sequence[str]) -> list[Any | None]:
    by_type: dict[str, list[tuple[int, uuid.UUID]]] = {}
    out: list[Any | None] = [None] * len(ids)
    for i, gid in enumerate(ids):
        decoded = decode_gid(gid)
        if decoded is None or decoded[0] not in NODE_REGISTRY:
            continue
        by_type.setdefault(decoded[0], []).append((i, decoded[1]))
    for type_name, items in by_type.items():
        results = await NODE_REGISTRY[type_name](info, [u for _, u in items])
        for (i, _), obj in zip(items, results):
            out[i] = obj
    return out


# ------------------------------------------------------------------ connections

@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


DEFAULT_PAGE = 20
MAX_PAGE = 100


class PaginationError(ValueError):
    pass


def clamp_first(first: int | None, default: int = DEFAULT_PAGE) -> int:
    """`first` defaults to 20 and is capped at 100; negative is an error."""
    if first is None:
        return default
    if first < 0:
        raise PaginationError("`first` must not be negative")
    return min(first, MAX_PAGE)


@dataclass
class Page(Generic[T]):
    """One page of rows with their cursors, as fetched by ``app.api.pagination.keyset_page``."""

    items: list[T]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool

    def page_info(self) -> PageInfo:
        return PageInfo(
            has_next_page=self.has_next_page,
            has_previous_page=self.has_previous_page,
            start_cursor=self.cursors[0] if self.cursors else None,
            end_cursor=self.cursors[-1] if self.cursors else None,
        )
