"""Compiled query plans: a validated query run without graphql-core's per-field machinery.

graphql-core spends most of a large read in bookkeeping per field (an info object, the
middleware chain, awaitable checks, a generic completion per value). A plan is built once per
cached document and operation: for every selected field it keeps the resolver to call (the
schema's own: Strawberry's resolver functions, or the attribute for plain fields) and how to
complete the value (the GraphQL type's own `serialize`, lists, objects). It then runs a whole
level at a time: each field is resolved for every object of the level before the next field,
so DataLoader keys batch as before, and nothing runs as a task.

A plan only says how to get the same answer faster; whenever it cannot give exactly that
answer it gives none, and the general path runs the operation (so every error, null-bubbling
and message comes from graphql-core as before). Not compiled: mutations and subscriptions;
directives; abstract types; introspection; fields with permission classes or field extensions;
arguments below the root or of non-scalar types; a response key selected twice; fragments on
another type. At run time any exception, a null in a non-null position, a variable that is not
exactly of its declared type, or a resolver that needs more of `info` than `info.context`
abandons the plan for that request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from math import isfinite
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    get_operation_ast,
)

MAX_INT, MIN_INT = 2**31 - 1, -(2**31)


class Unsupported(Exception):
    """The document (compile time) or this request (run time) is left to the general path."""


@dataclass(frozen=True, slots=True)
class Info:
    """What compiled resolvers get as `info`: the context, nothing else."""

    context: Any


@dataclass(frozen=True, slots=True)
class Output:
    kind: str  # "leaf", "list" or "object"
    nullable: bool
    serialize: Callable[[Any], Any] | None = None
    item: Output | None = None
    fields: tuple[Field, ...] = ()
    #: for graphql-core's own scalars: the Python type its `serialize` returns unchanged
    #: (values of exactly that type, within range, skip the call; anything else calls it)
    passes: type | None = None


#: graphql-core's built-in serializers and the values each returns as they are: a `str` for
#: String and ID, a `bool` for Boolean, a finite `float` for Float, an `int` in 32 bits for Int
_PASSES: dict[Any, type] = {
    GraphQLString.serialize: str,
    GraphQLID.serialize: str,
    GraphQLBoolean.serialize: bool,
    GraphQLFloat.serialize: float,
    GraphQLInt.serialize: int,
}


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    output: Output
    attribute: str | None = None  # plain field: read this attribute
    resolver: Callable[..., Any] | None = None  # else call this with (source, **kwargs)
    info_name: str | None = None
    arguments: tuple[tuple[str, Any], ...] = ()  # (python name, literal or VariableNode)
    constant: Any = None  # __typename


@dataclass(frozen=True, slots=True)
class Plan:
    root: Output
    variables: tuple[tuple[str, str, bool, Any], ...]  # name, scalar type, nullable, default


def compile_plan(schema: Any, document: DocumentNode, operation_name: str | None) -> Plan | None:
    """The plan for this operation of a validated document, or None if it is not supported."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.QUERY:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    try:
        _no_directives(operation)
        query = schema._schema.query_type
        root = _object(schema, query, operation.selection_set, fragments, root=True)
        return Plan(root=root, variables=_variables(operation))
    except Unsupported:
        return None


def _no_directives(operation: OperationDefinitionNode) -> None:
    if operation.directives:
        raise Unsupported("directives")


def _variables(operation: OperationDefinitionNode) -> tuple[tuple[str, str, bool, Any], ...]:
    found = []
    for definition in operation.variable_definitions or ():
        node, nullable = definition.type, True
        if node.kind == "non_null_type":
            node, nullable = node.type, False  # type: ignore[attr-defined]
        if node.kind != "named_type":
            raise Unsupported("list variable")
        default = _literal(definition.default_value) if definition.default_value else _MISSING
        found.append((definition.variable.name.value, node.name.value, nullable, default))  # type: ignore[attr-defined]
    return tuple(found)


_MISSING = object()


def _literal(node: ValueNode) -> Any:
    if isinstance(node, IntValueNode):
        value = int(node.value)
        if not MIN_INT <= value <= MAX_INT:
            raise Unsupported("int out of range")
        return value
    if isinstance(node, StringValueNode):
        return node.value
    if isinstance(node, BooleanValueNode):
        return node.value
    if isinstance(node, FloatValueNode):
        return float(node.value)
    if isinstance(node, NullValueNode):
        return None
    raise Unsupported(f"literal {node.kind}")


def _selections(
    parent: GraphQLObjectType, selection_set: SelectionSetNode, fragments: dict[str, Any]
) -> list[FieldNode]:
    """The fields selected on `parent`, fragments on the same type flattened in order."""
    out: list[FieldNode] = []
    for selection in selection_set.selections:
        if selection.directives:
            raise Unsupported("directives")
        if isinstance(selection, FieldNode):
            out.append(selection)
            continue
        if isinstance(selection, FragmentSpreadNode):
            definition = fragments[selection.name.value]
            if definition.directives:
                raise Unsupported("directives")
            condition, nested = definition.type_condition, definition.selection_set
        elif isinstance(selection, InlineFragmentNode):
            condition, nested = selection.type_condition, selection.selection_set
        else:
            raise Unsupported("selection")
        if condition is not None and condition.name.value != parent.name:
            raise Unsupported("fragment on another type")
        out += _selections(parent, nested, fragments)
    return out


def _object(
    schema: Any,
    parent: GraphQLObjectType,
    selection_set: SelectionSetNode,
    fragments: dict[str, Any],
    *,
    root: bool = False,
    nullable: bool = True,
) -> Output:
    if parent.interfaces or parent.is_type_of is not None:
        raise Unsupported("type check")
    fields: list[Field] = []
    keys: set[str] = set()
    for node in _selections(parent, selection_set, fragments):
        key = node.alias.value if node.alias else node.name.value
        if key in keys:
            raise Unsupported("a response key selected twice")
        keys.add(key)
        fields.append(_field(schema, parent, node, fragments, key, root=root))
    return Output(kind="object", nullable=nullable, fields=tuple(fields))


def _field(
    schema: Any,
    parent: GraphQLObjectType,
    node: FieldNode,
    fragments: dict[str, Any],
    key: str,
    *,
    root: bool,
) -> Field:
    name = node.name.value
    if name == "__typename":
        leaf = Output(kind="leaf", nullable=False, serialize=str)
        return Field(key=key, output=leaf, constant=parent.name)
    if name.startswith("__") or name not in parent.fields:
        raise Unsupported("introspection")
    definition = schema.get_field_for_type(field_name=name, type_name=parent.name)
    if definition is None or definition.extensions or definition.permission_classes:
        raise Unsupported("field extensions")
    graphql_field = parent.fields[name]
    output = _output(schema, graphql_field.type, node, fragments)
    arguments = []
    for argument in node.arguments or ():
        scalar = _scalar_name(graphql_field.args[argument.name.value].type)
        given = argument.value
        value = given if isinstance(given, VariableNode) else _argument_literal(given, scalar)
        arguments.append((_python_argument(schema, definition, argument.name.value), value))
    if arguments and not root:
        raise Unsupported("arguments below the root")
    resolver = definition.base_resolver
    if resolver is None:
        return Field(key=key, output=output, attribute=definition.python_name)
    if resolver.self_parameter is None or resolver.root_parameter is not None:
        raise Unsupported("resolver shape")
    info = resolver.info_parameter
    return Field(
        key=key,
        output=output,
        resolver=resolver.wrapped_func,
        info_name=info.name if info is not None else None,
        arguments=tuple(arguments),
    )


SCALARS = frozenset({"Int", "Float", "String", "ID", "Boolean"})


def _scalar_name(graphql_type: Any) -> str:
    if isinstance(graphql_type, GraphQLNonNull):
        graphql_type = graphql_type.of_type
    if not isinstance(graphql_type, GraphQLScalarType) or graphql_type.name not in SCALARS:
        raise Unsupported("argument type")
    return str(graphql_type.name)


def _argument_literal(node: ValueNode, scalar: str) -> Any:
    """A literal argument as graphql-core coerces it (validation already matched the type)."""
    if isinstance(node, NullValueNode):
        return None
    if scalar == "ID" and isinstance(node, IntValueNode | StringValueNode):
        return node.value
    if scalar == "Float" and isinstance(node, IntValueNode | FloatValueNode):
        return float(node.value)
    expected = {"Int": IntValueNode, "String": StringValueNode, "Boolean": BooleanValueNode}
    if not isinstance(node, expected.get(scalar, ())):
        raise Unsupported("literal")
    return _literal(node)


def _python_argument(schema: Any, definition: Any, graphql_name: str) -> str:
    for argument in definition.arguments:
        if schema.config.name_converter.get_graphql_name(argument) == graphql_name:
            return str(argument.python_name)
    raise Unsupported("argument")


def _output(schema: Any, graphql_type: Any, node: FieldNode, fragments: dict[str, Any]) -> Output:
    nullable = not isinstance(graphql_type, GraphQLNonNull)
    if not nullable:
        graphql_type = graphql_type.of_type
    if isinstance(graphql_type, GraphQLList):
        item = _output(schema, graphql_type.of_type, node, fragments)
        return Output(kind="list", nullable=nullable, item=item)
    if isinstance(graphql_type, GraphQLScalarType | GraphQLEnumType):
        serialize = graphql_type.serialize
        return Output(
            kind="leaf", nullable=nullable, serialize=serialize, passes=_PASSES.get(serialize)
        )
    if isinstance(graphql_type, GraphQLObjectType) and node.selection_set is not None:
        return _object(schema, graphql_type, node.selection_set, fragments, nullable=nullable)
    raise Unsupported("abstract type")


def coerce_variables(plan: Plan, given: dict[str, Any]) -> dict[str, Any]:
    """The operation's variables, exactly as declared; anything else is Unsupported."""
    out: dict[str, Any] = {}
    for name, scalar, nullable, default in plan.variables:
        if name not in given:
            if default is not _MISSING:
                out[name] = default
            elif not nullable:
                raise Unsupported("missing variable")
            continue
        value = given[name]
        if value is None:
            if not nullable:
                raise Unsupported("null variable")
        elif scalar == "Int":
            if type(value) is not int or not MIN_INT <= value <= MAX_INT:
                raise Unsupported("not an Int")
        elif scalar in ("String", "ID"):
            if type(value) is not str:
                raise Unsupported("not a string")
        elif scalar == "Boolean":
            if type(value) is not bool:
                raise Unsupported("not a Boolean")
        elif scalar == "Float":
            if type(value) not in (int, float):
                raise Unsupported("not a Float")
            value = float(value)
        else:
            raise Unsupported("variable type")
        out[name] = value
    return out


async def run(
    plan: Plan, *, context: Any, root_value: Any, variables: dict[str, Any]
) -> dict[str, Any]:
    """The `data` of the operation; Unsupported (or any error) means: use the general path."""
    data: dict[str, Any] = {}
    await _fill(plan.root, [data], [root_value], Info(context), variables)
    return data


async def _complete(
    output: Output, values: list[Any], info: Info, variables: dict[str, Any]
) -> list[Any]:
    if output.kind == "leaf":
        serialize = output.serialize
        assert serialize is not None
        passes = output.passes
        out: list[Any] = []
        for value in values:
            if type(value) is passes and (
                # `type(value) is passes` narrows nothing for mypy; no cast() in this loop
                (passes is not int or MIN_INT <= value <= MAX_INT)  # type: ignore[operator]
                and (passes is not float or isfinite(value))  # type: ignore[arg-type]
            ):
                out.append(value)
                continue
            if value is None:
                if not output.nullable:
                    raise Unsupported("null")
                out.append(None)
                continue
            serialized = serialize(value)
            if serialized is None:
                raise Unsupported("unserializable")
            out.append(serialized)
        return out
    if output.kind == "list":
        assert output.item is not None
        lists = []
        for value in values:
            if value is None:
                if not output.nullable:
                    raise Unsupported("null")
            elif isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
                raise Unsupported("not a list")
            else:
                value = list(value)
            lists.append(value)
        flat = [item for value in lists if value is not None for item in value]
        done = iter(await _complete(output.item, flat, info, variables))
        return [None if value is None else [next(done) for _ in value] for value in lists]
    objects: list[dict[str, Any] | None] = []
    sources = []
    for value in values:
        if value is None:
            if not output.nullable:
                raise Unsupported("null")
            objects.append(None)
        else:
            objects.append({})
            sources.append(value)
    await _fill(output, [obj for obj in objects if obj is not None], sources, info, variables)
    return objects


async def _fill(
    output: Output,
    objects: list[dict[str, Any]],
    sources: list[Any],
    info: Info,
    variables: dict[str, Any],
) -> None:
    """Each object's fields in selection order, one field at a time across all the objects."""
    for field in output.fields:
        resolved = await _resolve(field, sources, info, variables)
        completed = await _complete(field.output, resolved, info, variables)
        for obj, value in zip(objects, completed, strict=True):
            obj[field.key] = value


async def _resolve(
    field: Field, sources: list[Any], info: Info, variables: dict[str, Any]
) -> list[Any]:
    if field.attribute is not None:
        name = field.attribute
        return [getattr(source, name) for source in sources]
    if field.resolver is None:
        return [field.constant] * len(sources)
    kwargs: dict[str, Any] = {}
    for python_name, given in field.arguments:
        if isinstance(given, VariableNode):
            if given.name.value not in variables:
                continue  # not provided: the resolver's own default, as GraphQL would
            kwargs[python_name] = variables[given.name.value]
        else:
            kwargs[python_name] = given
    if field.info_name is not None:
        kwargs[field.info_name] = info
    resolver = field.resolver
    results = [resolver(source, **kwargs) for source in sources]
    return [await result if inspect.isawaitable(result) else result for result in results]
