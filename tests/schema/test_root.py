"""The assembled schema: every name a client can see carries a description."""

from __future__ import annotations

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLString,
    specified_scalar_types,
)

from schema.root import build_schema


def undescribed(named: GraphQLNamedType) -> list[str]:
    """The type itself, its fields, their arguments and its enum values that lack a description."""
    missing = [] if named.description else [named.name]
    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
        for field_name, field in named.fields.items():
            if not field.description:
                missing.append(f"{named.name}.{field_name}")
            for arg_name, arg in getattr(field, "args", {}).items():
                if not arg.description:
                    missing.append(f"{named.name}.{field_name}({arg_name})")
    if isinstance(named, GraphQLEnumType):
        missing += [
            f"{named.name}.{v}" for v, value in named.values.items() if not value.description
        ]
    return missing


def our_types() -> list[GraphQLNamedType]:
    schema = build_schema()._schema
    return [
        named
        for name, named in schema.type_map.items()
        if not name.startswith("__") and name not in specified_scalar_types
    ]


def test_every_type_field_argument_and_enum_value_is_described() -> None:
    missing = [name for named in our_types() for name in undescribed(named)]
    assert not missing, f"add a description (units, ranges, who may call it) to: {missing}"


def test_the_walk_sees_every_kind_of_name() -> None:
    """Guard the guard: the walk reaches types, fields, arguments and enum values."""
    names = {named.name: named for named in our_types()}
    assert {"Query", "Mutation", "Subscription", "Video", "VideoStatus"} <= set(names)
    feed = names["Query"].fields["feed"]  # type: ignore[attr-defined]
    assert feed.args["limit"].description
    bare = GraphQLEnumType("Bare", {"ONE": 1})
    assert undescribed(bare) == ["Bare", "Bare.ONE"]
    field = GraphQLField(GraphQLString, args={"a": GraphQLArgument(GraphQLString)})
    assert undescribed(GraphQLObjectType("O", {"f": field})) == ["O", "O.f", "O.f(a)"]
