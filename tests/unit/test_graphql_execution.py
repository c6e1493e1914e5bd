"""The shorter way through plain fields answers exactly what graphql-core's own way does, errors included."""

from __future__ import annotations

import enum
import gc
from typing import Any

import pytest
import strawberry
from graphql import DocumentNode, ExecutionResult, GraphQLObjectType, execute, parse
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.graphql import execution
from app.graphql.execution import LedgerExecutionContext


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Thing:
    number: int
    label: str
    colour: Colour
    maybe: int | None
    things: list[int]

    @strawberry.field
    def doubled(self) -> int:
        return self.number * 2

    @strawberry.field
    def shout(self, word: str) -> str:
        return word.upper()


@strawberry.type
class Query:
    @strawberry.field
    def thing(self) -> Thing:
        return Thing(number=7, label="a", colour=Colour.RED, maybe=None, things=[1, 2])


schema = strawberry.Schema(query=Query)

FIELDS = '__typename number label colour maybe things doubled shout(word: "hi")'


def run(document: str | DocumentNode, context_class: type) -> ExecutionResult:
    parsed = parse(document) if isinstance(document, str) else document
    result = execute(schema._schema, parsed, executor_class=context_class)
    assert isinstance(result, ExecutionResult)
    return result


def both(document: str) -> tuple[ExecutionResult, ExecutionResult]:
    return run(document, LedgerExecutionContext), run(document, StrawberryGraphQLCoreExecutionContext)


def test_plain_fields_are_answered_as_graphql_core_answers_them() -> None:
    ours, theirs = both(f"{{ thing {{ {FIELDS} again: number }} }}")
    assert ours.errors is None
    assert ours.data == theirs.data
    assert ours.data == {
        "thing": {
            "__typename": "Thing",
            "number": 7,
            "label": "a",
            "colour": "RED",
            "maybe": None,
            "things": [1, 2],
            "doubled": 14,
            "shout": "HI",
            "again": 7,
        }
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("number", None),  # a null in a non-null field
        ("number", "seven"),  # a value the Int type does not serialise
        ("number", 2**31),  # beyond GraphQL's Int
        ("colour", "GREEN"),  # not a member of the enum
        ("maybe", 1.5),  # a nullable Int that is not an integer
    ],
)
def test_a_value_its_field_cannot_give_gets_graphql_cores_own_error(
    name: str, value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = Thing(number=7, label="a", colour=Colour.RED, maybe=None, things=[])
    setattr(made, name, value)
    root = schema._schema.query_type
    assert root is not None
    monkeypatch.setattr(root.fields["thing"], "resolve", lambda source, info, **arguments: made)

    ours, theirs = both(f"{{ thing {{ {name} label }} }}")
    assert theirs.errors, "the case must be an error for graphql-core too"
    assert ours.data == theirs.data
    assert [(e.message, e.path) for e in ours.errors or []] == [(e.message, e.path) for e in theirs.errors]


def test_only_fields_that_read_an_attribute_take_the_shorter_way() -> None:
    thing = schema._schema.get_type("Thing")
    assert isinstance(thing, GraphQLObjectType)
    plain = {name for name, field in thing.fields.items() if execution._plain_leaf(field) is not None}
    assert plain == {"number", "label", "colour", "maybe"}  # not the list, nor the fields with resolvers


def test_an_execution_leaves_nothing_for_the_cyclic_garbage_collector() -> None:
    document = parse(f"{{ thing {{ {FIELDS} }} }}")  # once: the parser's tokens link both ways
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            run(document, StrawberryGraphQLCoreExecutionContext)
        theirs = gc.collect()
        for _ in range(10):
            run(document, LedgerExecutionContext)
        ours = gc.collect()
    finally:
        gc.enable()
    assert theirs > 0  # graphql-core's executor is held in a cycle by its own helpers
    assert ours == 0


async def test_plain_fields_take_the_shorter_way_in_strawberrys_pipeline_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strawberry's schema hands graphql-core a middleware manager on every request, empty unless an extension
    resolves fields itself; an empty one must not send every field the long way."""
    ledger_like = strawberry.Schema(query=Query, execution_context_class=LedgerExecutionContext)
    long_way: list[str] = []
    original = StrawberryGraphQLCoreExecutionContext.execute_field

    def counted(self: Any, parent_type: Any, source: Any, field_details_list: Any, *args: Any) -> Any:
        long_way.append(field_details_list[0].node.name.value)
        return original(self, parent_type, source, field_details_list, *args)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", counted)
    result = await ledger_like.execute("{ thing { __typename number label colour } }")
    assert result.errors is None
    assert long_way == ["thing"], "only the field with a resolver of its own"
