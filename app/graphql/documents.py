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
import gc
import sys
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
    GraphQLSchema,
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
MAX_TOKENS = 1_000
"""GraphiQL's introspection query has some 180 tokens, the longest operation of the e2e client some 110."""
MAX_ALIASES = 15
MAX_FIELDS = 500
"""Field selections per document, with its fragments expanded (GraphiQL's introspection query: about 190). Beyond
it a document is refused before the costly validation rules run: graphql-core's OverlappingFieldsCanBeMerged is
quadratic in the fields that share a name."""
CACHED_DOCUMENTS = 256
"""Distinct query texts kept; least recently used go first."""
CACHED_TEXT = 20_000
"""Longer texts (characters) are parsed and validated each time: the cache keeps texts and documents, and a few
short operations are what clients send again and again."""


class _Measure:
    """The depth, aliases and fields of a document's operations, each fragment measured once.

    Strawberry's QueryDepthLimiter and MaxAliasesLimiter walk a fragment again at every spread, so a fragment that
    spreads the next one twice doubled their work with each fragment: 20 fragments (758 bytes) held the event loop
    for 5.6 s. Here every selection set is walked once and a fragment's measures are kept by its name, so the work
    is linear in the document. The counts are those of the expanded document (a fragment spread twice counts
    twice), so such a document is refused for its size rather than run. A fragment that spreads itself counts as
    empty here; NoFragmentCycles refuses it."""

    def __init__(self, document: DocumentNode) -> None:
        self._fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self._measured: dict[str, tuple[int, int, int]] = {}
        self._open: set[str] = set()

    def selections(self, selection_set: SelectionSetNode | None) -> tuple[int, int, int]:
        """(depth, aliases, fields) of a selection set: a field with a selection set is one deeper than its deepest
        child; introspection fields (``__schema``, ``__type``) do not count towards depth, as in Strawberry's
        limiter, but count as fields."""
        depth = aliases = fields = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                inner_depth, inner_aliases, inner_fields = self.selections(selection.selection_set)
                aliases += inner_aliases + (1 if selection.alias else 0)
                fields += inner_fields + 1
                if selection.selection_set is not None and not selection.name.value.startswith("__"):
                    depth = max(depth, 1 + inner_depth)
                continue
            if isinstance(selection, InlineFragmentNode):
                inner_depth, inner_aliases, inner_fields = self.selections(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                inner_depth, inner_aliases, inner_fields = self.fragment(selection.name.value)
            else:  # pragma: no cover - graphql-core has no other selection
                continue
            depth, aliases, fields = max(depth, inner_depth), aliases + inner_aliases, fields + inner_fields
        return depth, aliases, fields

    def fragment(self, name: str) -> tuple[int, int, int]:
        measured = self._measured.get(name)
        if measured is not None:
            return measured
        definition = self._fragments.get(name)
        if definition is None or name in self._open:
            return 0, 0, 0  # unknown or cyclic: other rules refuse it
        self._open.add(name)
        measured = self._measured[name] = self.selections(definition.selection_set)
        self._open.discard(name)
        return measured


def _counted(number: int) -> str:
    return f"{number}" if number < 1_000_000 else "over a million"


def limit_errors(document: DocumentNode) -> list[GraphQLError]:
    """The depth limit per operation, and the alias and field limits over the document, in time linear in it."""
    measure = _Measure(document)
    errors = []
    aliases = fields = 0
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        try:
            depth, found_aliases, found_fields = measure.selections(definition.selection_set)
        except RecursionError:  # nesting that no limit would let through anyway
            depth, found_aliases, found_fields = MAX_DEPTH + 1, 0, 0
        aliases, fields = aliases + found_aliases, fields + found_fields
        if depth > MAX_DEPTH:
            name = definition.name.value if definition.name else "anonymous"
            errors.append(GraphQLError(f"'{name}' exceeds maximum operation depth of {MAX_DEPTH}", [definition]))
    if aliases > MAX_ALIASES:
        errors.append(GraphQLError(f"{_counted(aliases)} aliases found. Allowed: {MAX_ALIASES}"))
    if fields > MAX_FIELDS:
        errors.append(GraphQLError(f"{_counted(fields)} fields found, fragments expanded. Allowed: {MAX_FIELDS}"))
    return errors


class OperationLimits(ValidationRule):
    """:func:`limit_errors` as a validation rule."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        for error in limit_errors(context.document):
            context.report_error(error)


Rules = tuple[type[ASTValidationRule], ...]
LIMIT_RULES: Rules = (OperationLimits,)
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

SWITCH_INTERVAL = 0.0005
"""While a validation runs aside, the interpreter hands the GIL over this often (default 5 ms), so that the event
loop, which takes the GIL back a dozen times for each request it answers, waits for it far less."""


def _validated(schema: GraphQLSchema, document: DocumentNode, rules: Rules) -> list[GraphQLError]:
    """Validation, then its garbage collected at once: graphql-core's rules are visitors that keep bound methods of
    themselves, about 1,800 objects in reference cycles per validation. Left to the collector's own pace they made
    young collections of 20-40 ms (many validations' worth at a time) that held every request up; collected here,
    a validation's cycles cost a pause of a millisecond or two right after it."""
    errors = validate_document(schema, document, rules)
    gc.collect(0)
    return errors


class _Aside:
    """Validation off the event loop: graphql-core takes 5-10 ms for an ordinary operation on a busy core and over
    100 ms for some documents within the limits (OverlappingFieldsCanBeMerged is quadratic in same-named fields),
    and the loop must go on answering meanwhile. One thread: however many new texts arrive at once, one of them at a
    time competes with the loop for the GIL. Texts seen before are not validated again (the LRU above)."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphql-validation")
        self._running = 0
        self._interval = sys.getswitchinterval()

    async def validate(self, schema: GraphQLSchema, document: DocumentNode, rules: Rules) -> list[GraphQLError]:
        if self._running == 0:
            self._interval = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._running += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, _validated, schema, document, rules)
        finally:
            self._running -= 1
            if self._running == 0:
                sys.setswitchinterval(self._interval)


_aside = _Aside()


AMBIGUOUS = "Must provide operation name if query contains multiple operations."


def _operations(document: DocumentNode) -> int:
    return sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)


def _rules(context: ExecutionContext) -> Rules:
    """What the request is validated with: Strawberry's rules, the limits, and no introspection when it is off."""
    rules = context.validation_rules + LIMIT_RULES
    if not getattr(context.context, "introspection", True):
        rules = (*rules, NoSchemaIntrospectionCustomRule)
    return rules


def unlink_tokens(document: DocumentNode) -> None:
    """The parser links a document's tokens both ways (``prev`` and ``next``), so every document is a reference cycle
    of some thousand objects that only the cyclic garbage collector frees: a stream of new texts (a fuzzer, an
    attacker) made young collections of 20-40 ms and full ones of 200 ms, during which nothing is answered. Nothing
    reads the links after parsing (error locations come from each node's ``loc.start`` and ``loc.source``), so they
    are cut: the document then goes with its last reference."""
    location = document.loc
    token = location.start_token if location is not None else None
    while token is not None:
        following = token.next
        token.prev = token.next = None
        token = following


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
            unlink_tokens(context.graphql_document)
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
            # the limits first, at a cost linear in the text: a document over them is not validated further
            errors = limit_errors(document) or await _aside.validate(context.schema._schema, document, rules)
            context.pre_execution_errors = errors
            if entry is not None:
                entry.rules, entry.errors = rules, list(errors)
        yield
