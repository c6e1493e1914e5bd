"""Strawberry's graphql-core execution context, with a shorter way through the fields that only read a value.

Most of a mutation's answer is plain fields: ``balance``, ``version``, ``useId``, an allocation's ``amount``, each
an attribute of the result object serialised as a scalar or enum, and ``__typename``. graphql-core runs every one of
them through its whole field machinery (a resolve info object with a dozen members, the argument lookup, value
completion), which cost more than the command's own decision. Here such a field is read and serialised directly:

- ``__typename`` is the parent type's name, which is what graphql-core's meta field resolves to;
- a field without arguments whose resolver is Strawberry's default (no resolver, permission or extension of its
  own: ``StrawberryField.is_basic_field``), of a scalar or enum type, is its source's attribute passed through the
  type's ``serialize``, as graphql-core's ``complete_leaf_value`` does.

Anything else, and any value such a field cannot simply give (a null, an error, an awaitable, a value its type does
not serialise), goes through graphql-core unchanged, so that errors, their paths and their messages stay graphql-core's.

The context also leaves no reference cycle behind. graphql-core's executor keeps helpers for resolvers that are
its own bound methods (``async_helpers``), so every executor, and the request, context and collected fields it holds,
was garbage only the cyclic collector could free: some fifty objects per request, and most of what each young
generation collection found. Here the helpers reach the executor through a weak reference.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Sequence
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfoHelpers,
    Undefined,
    get_nullable_type,
    is_leaf_type,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

_TYPENAME = "__typename"


def _plain_leaf(field: GraphQLField) -> GraphQLLeafType | None:
    """The field's leaf type if the field only reads its source's attribute; None otherwise."""
    if field.args or not getattr(field.resolve, "_is_default", False):
        return None
    nullable = get_nullable_type(field.type)
    return nullable if is_leaf_type(nullable) else None


_LEAVES: dict[int, tuple[GraphQLField, GraphQLLeafType | None, bool]] = {}
"""Per field of the schema (by identity: a GraphQLField is not hashable), once: the field itself, which keeps its
id from being reused, its leaf type if it is a plain leaf, and whether it is non-null."""


def _leaf(field: GraphQLField) -> tuple[GraphQLField, GraphQLLeafType | None, bool]:
    found = _LEAVES.get(id(field))
    if found is None:
        found = _LEAVES[id(field)] = (field, _plain_leaf(field), isinstance(field.type, GraphQLNonNull))
    return found


def _alive(executor: weakref.ref[LedgerExecutionContext]) -> LedgerExecutionContext:
    found = executor()
    if found is None:
        raise RuntimeError("a resolver used the helpers of an execution that has ended")
    return found


class LedgerExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """The schema's execution context (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        executor = weakref.ref(self)

        def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
            return _alive(executor).gather_async_work(values)

        def track(values: Sequence[Any]) -> None:
            _alive(executor).track_async_work(values)

        self.async_helpers = GraphQLResolveInfoHelpers(gather=gather, track=track)
        manager = self.middleware_manager
        self._plain = manager is None or not manager.middlewares
        """No field middleware: Strawberry's schema passes a manager on every request, empty unless an extension
        resolves fields itself (then every field goes graphql-core's way, through it)."""

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        name = node.name.value
        if name == _TYPENAME:
            return parent_type.name
        field = parent_type.fields.get(name)
        if field is not None and not node.arguments and self._plain:
            _, leaf, non_null = _leaf(field)
            if leaf is not None:
                value = field.resolve(source, None)  # Strawberry's default resolver: the attribute
                if value is None:
                    if not non_null:
                        return None
                elif not isinstance(value, Exception) and not self.is_awaitable(value):
                    try:
                        serialized = leaf.serialize(value)
                    except Exception:  # graphql-core makes the located error below
                        serialized = None
                    if serialized is not None and serialized is not Undefined:
                        return serialized
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
