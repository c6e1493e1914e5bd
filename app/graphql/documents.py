"""Parsing and validation done once per distinct query text, with the request limits built in.

Clients send the same few operation texts over and over, with different variables. Parsing and validating such a
text costs several times what running the command does, and both depend only on the text, the schema and the
validation rules, so the outcome is kept in a small LRU shared by every request. The depth and alias limits are one
validation rule of ours, built once (Strawberry's limiter extensions build new rule classes for each request, which
would defeat any cache, and walk fragments again at every spread). The token limit applies when a text is parsed (a
cached text was parsed with it).

A text that does not parse is not kept (nor is its error); a text that parses is kept with its validation errors,
if any, so that a refused query is refused again without the work."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

MAX_DEPTH = 10
"""No type of the ledger refers back to itself, so no query gets near this; it guards later additions.
(Introspection fields are not counted, so GraphiQL's schema query passes.)"""
MAX_TOKENS = 2_000
MAX_ALIASES = 15
CACHED_DOCUMENTS = 256
"""Distinct query texts kept; least recently used go first."""
CACHED_TEXT = 20_000
"""Longer texts (characters) are parsed and validated each time: the cache keeps texts and documents, and a few
short operations are what clients send again and again."""


class _Measure:
    """The depth and the alias count of a document's operations, each fragment measured once.

    Strawberry's QueryDepthLimiter and MaxAliasesLimiter walk a fragment again at every spread, so a fragment that
    spreads the next one twice doubled their work with each fragment: 20 fragments (758 bytes) held the event loop
    for 5.6 s. Here every selection set is walked once and a fragment's depth and aliases are kept by its name, so
    the work is linear in the document. The counts are those of the expanded document (a fragment spread twice
    counts twice), so such a document is refused for its aliases or depth rather than run. A fragment that spreads
    itself counts as empty here; NoFragmentCycles refuses it."""

    def __init__(self, document: DocumentNode) -> None:
        self._fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self._measured: dict[str, tuple[int, int]] = {}
        self._open: set[str] = set()

    def selections(self, selection_set: SelectionSetNode | None) -> tuple[int, int]:
        """(depth, aliases) of a selection set: a field with a selection set is one deeper than its deepest child;
        introspection fields (``__schema``, ``__type``) do not count towards depth, as in Strawberry's limiter."""
        depth = aliases = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                inner_depth, inner_aliases = self.selections(selection.selection_set)
                aliases += inner_aliases + (1 if selection.alias else 0)
                if selection.selection_set is not None and not selection.name.value.startswith("__"):
                    depth = max(depth, 1 + inner_depth)
            elif isinstance(selection, InlineFragmentNode):
                inner_depth, inner_aliases = self.selections(selection.selection_set)
                depth, aliases = max(depth, inner_depth), aliases + inner_aliases
            elif isinstance(selection, FragmentSpreadNode):
                inner_depth, inner_aliases = self.fragment(selection.name.value)
                depth, aliases = max(depth, inner_depth), aliases + inner_aliases
        return depth, aliases

    def fragment(self, name: str) -> tuple[int, int]:
        measured = self._measured.get(name)
        if measured is not None:
            return measured
        definition = self._fragments.get(name)
        if definition is None or name in self._open:
            return 0, 0  # unknown or cyclic: other rules refuse it
        self._open.add(name)
        measured = self._measured[name] = self.selections(definition.selection_set)
        self._open.discard(name)
        return measured


class OperationLimits(ValidationRule):
    """The depth limit per operation and the alias limit over the document, in time linear in the document."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        measure = _Measure(context.document)
        aliases = 0
        for definition in context.document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            try:
                depth, found = measure.selections(definition.selection_set)
            except RecursionError:  # nesting that no limit would let through anyway
                depth, found = MAX_DEPTH + 1, 0
            aliases += found
            if depth > MAX_DEPTH:
                name = definition.name.value if definition.name else "anonymous"
                context.report_error(
                    GraphQLError(f"'{name}' exceeds maximum operation depth of {MAX_DEPTH}", [definition])
                )
        if aliases > MAX_ALIASES:
            counted = f"{aliases}" if aliases < 1_000_000 else "over a million"
            context.report_error(GraphQLError(f"{counted} aliases found. Allowed: {MAX_ALIASES}"))


LIMIT_RULES: tuple[type[ASTValidationRule], ...] = (OperationLimits,)
"""The depth and alias limits as one validation rule, built once so that validations can be reused."""


@dataclass
class Prepared:
    document: DocumentNode
    rules: tuple[type[ASTValidationRule], ...] | None = None
    """The rules the errors were found with; None: not validated yet."""
    errors: list[GraphQLError] = field(default_factory=list)


class _Documents:
    """An LRU of parsed (and validated) documents by query text."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, Prepared] = OrderedDict()

    def get(self, query: str) -> Prepared | None:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
        return entry

    def put(self, query: str, document: DocumentNode) -> Prepared:
        """The entry for a parsed text, kept unless the text is too long to keep."""
        entry = Prepared(document)
        if len(query) > CACHED_TEXT:
            return entry
        self._entries[query] = entry
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return entry

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


documents = _Documents(CACHED_DOCUMENTS)

INLINE_TEXT = 1_000
"""Texts up to this many characters are validated on the event loop (well under a millisecond for what clients
send); longer ones on the validation thread, since graphql-core needs up to about 150 ms for a text at the token
limit (OverlappingFieldsCanBeMerged is quadratic in same-named fields) and the loop must go on answering meanwhile."""

_validator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphql-validation")
"""One thread: however many long texts arrive at once, one of them at a time competes with the loop for the GIL,
which the interpreter hands back every few milliseconds (sys.getswitchinterval)."""


AMBIGUOUS = "Must provide operation name if query contains multiple operations."


def _operations(document: DocumentNode) -> int:
    return sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)


def _rules(context: ExecutionContext) -> tuple[type[ASTValidationRule], ...]:
    """What the request is validated with: Strawberry's rules, the limits, and no introspection when it is off."""
    rules = context.validation_rules + LIMIT_RULES
    if not getattr(context.context, "introspection", True):
        rules = (*rules, NoSchemaIntrospectionCustomRule)
    return rules


class PreparedDocuments(SchemaExtension):
    """Use as a factory (``extensions=[PreparedDocuments]``): the instance is per request, the cache is shared.

    Parsing stays Strawberry's: on a miss the hook lets it run and keeps what it found. Validation is done here,
    with Strawberry's own ``validate_document``, so that a long text can be validated off the event loop."""

    _entry: Prepared | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = MAX_TOKENS
        query = context.query
        entry = documents.get(query) if query else None
        if entry is not None:
            context.graphql_document = entry.document  # Strawberry then skips parsing
            self._entry = entry
            yield
            return
        yield
        if query and context.graphql_document is not None:  # parsed: keep it (a syntax error leaves None)
            self._entry = documents.put(query, context.graphql_document)

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        rules = context.validation_rules = _rules(context)
        document = context.graphql_document
        if document is not None and context._provided_operation_name is None and _operations(document) > 1:
            # Strawberry would run the first; the GraphQL spec makes it a request error
            context.pre_execution_errors = [GraphQLError(AMBIGUOUS)]
            yield
            return
        entry = self._entry
        if entry is not None and entry.rules == rules:
            context.pre_execution_errors = list(entry.errors)  # Strawberry then skips validating
            yield
            return
        if document is not None and context.pre_execution_errors is None:
            schema = context.schema._schema
            if len(context.query or "") <= INLINE_TEXT:
                errors = validate_document(schema, document, rules)
            else:
                loop = asyncio.get_running_loop()
                errors = await loop.run_in_executor(_validator, validate_document, schema, document, rules)
            context.pre_execution_errors = errors
            if entry is not None:
                entry.rules, entry.errors = rules, list(errors)
        yield
