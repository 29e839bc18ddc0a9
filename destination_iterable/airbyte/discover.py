"""Destination discover (data activation): the operations this destination offers, built from Iterable's metadata.

Pure: it takes what ``GET /api/lists`` and ``GET /api/users/getFields`` returned and builds a protocol
``DestinationCatalog`` (``airbyte_protocol_dataclasses.models``, the models airbyte-cdk 7.x installs). The caller
prints it as ``{"type": "DESTINATION_CATALOG", "destination_catalog": {...}}`` (``destination_catalog_message``).

Rules (docs/data-activation.md explains them):

* one object per Standard (static) list name; lists sharing a name are one object, because ``write`` resolves a name
  to the oldest of them (``createdAt``, then ``id``, as ``iterable/lists.py`` does). Dynamic, Suppression and
  Internal lists are never offered;
* plus one object, ``NEW_LIST_OBJECT_NAME``, that stands for "the list named after the stream"
  (``list_name_template``): ``write`` treats it like a stream without ``destination_object_name``;
* per object the sync modes ``append`` (subscribe), ``update`` (subscribe users that already exist),
  ``soft_delete`` (unsubscribe) and ``overwrite`` (mirror the list to the stream);
* ``json_schema``: the identifier fields and the project's writable user profile fields, Iterable types mapped to
  JSON Schema. ``soft_delete`` takes the identifiers only;
* ``matching_keys``: ``[["email"]]`` (email-based project), ``[["userId"]]`` (userID-based) or both (hybrid).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airbyte_protocol_dataclasses.models import DestinationCatalog, DestinationOperation, DestinationSyncMode
from serpyco_rs import Serializer

from destination_iterable.members.fields import ITERABLE_SYSTEM_FIELDS, RESERVED_PREFIXES

__all__ = [
    "DEFAULT_SYNC_MODES",
    "NEW_LIST_OBJECT_NAME",
    "build_destination_catalog",
    "catalog_from_json",
    "catalog_to_json",
    "destination_catalog_message",
    "field_schema",
    "matching_keys",
    "normalize_project_type",
    "profile_properties",
    "static_lists_by_name",
]

STATIC_LIST_TYPE = "Standard"
NEW_LIST_OBJECT_NAME = "(New list named after the stream)"
EMAIL = "email"
USER_ID = "userId"
# append = subscribe, update = subscribe existing users only, soft_delete = unsubscribe, overwrite = mirror.
DEFAULT_SYNC_MODES: tuple[DestinationSyncMode, ...] = (
    DestinationSyncMode.append, DestinationSyncMode.update, DestinationSyncMode.soft_delete,
    DestinationSyncMode.overwrite,
)
SUPPORTED_SYNC_MODES = frozenset(DEFAULT_SYNC_MODES)
PROJECT_TYPES = {
    "email": "email", "email-based": "email", "email_based": "email",
    "userid": "userid", "userid-based": "userid", "userid_based": "userid", "user_id": "userid",
    "hybrid": "hybrid",
}
# Profile fields Iterable maintains itself (on top of ITERABLE_SYSTEM_FIELDS): never offered as a target.
READ_ONLY_FIELDS = frozenset({"devices", "browserTokens", "phoneNumberDetails"})
READ_ONLY_PREFIXES = ("itbl",)

_DATE_TIME = {"type": "string", "format": "date-time"}
_TYPE_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "keyword": {"type": "string"},
    "long": {"type": "integer"},
    "integer": {"type": "integer"},
    "double": {"type": "number"},
    "float": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": _DATE_TIME,
    "object": {"type": "object"},
    "array": {"type": "array"},
    "nested": {"type": "array", "items": {"type": "object"}},
    "geo_location": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}},
}
_CATALOG_SERIALIZER = Serializer(DestinationCatalog, omit_none=True)


def normalize_project_type(project_type: str) -> str:
    """``email``, ``userid`` or ``hybrid`` from any spelling Iterable or a user would use."""
    key = str(project_type).strip().lower().replace(" ", "-")
    if key not in PROJECT_TYPES:
        raise ValueError(f"Unknown Iterable project type {project_type!r}: expected email, userid or hybrid.")
    return PROJECT_TYPES[key]


def matching_keys(project_type: str) -> list[list[str]]:
    """The identifiers a record may be matched on in this kind of project."""
    kind = normalize_project_type(project_type)
    if kind == "email":
        return [[EMAIL]]
    if kind == "userid":
        return [[USER_ID]]
    return [[EMAIL], [USER_ID]]


def field_schema(iterable_type: str) -> dict[str, Any]:
    """JSON Schema for one Iterable field type (``getFields``' values); an unknown type accepts anything."""
    schema = _TYPE_SCHEMAS.get(str(iterable_type).strip().lower())
    if schema is None:
        return {"description": f"Iterable type '{iterable_type}'"}
    return _copy(schema)


def _copy(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: _copy(value) if isinstance(value, dict) else value for key, value in schema.items()}


def _writable(top: str) -> bool:
    return not (top in ITERABLE_SYSTEM_FIELDS or top in READ_ONLY_FIELDS or top.startswith(READ_ONLY_PREFIXES)
                or top.startswith(RESERVED_PREFIXES))


def _container(schema: dict[str, Any]) -> dict[str, Any]:
    """Where a child field goes: the object itself, or the item object of an array of objects."""
    if schema.get("type") == "array":
        items = schema.setdefault("items", {"type": "object"})
        if items.get("type") != "object":
            schema["items"] = items = {"type": "object"}
        return items
    if schema.get("type") != "object":
        schema.clear()
        schema["type"] = "object"
    return schema


def profile_properties(fields: Mapping[str, str]) -> dict[str, Any]:
    """The writable user profile fields as JSON Schema ``properties``; dotted paths become nested objects.

    Identifiers (``email``, ``userId``), Iterable's system fields and Airbyte's own fields are left out.
    """
    properties: dict[str, Any] = {}
    for path in sorted(fields, key=lambda p: (p.count("."), p)):
        parts = str(path).split(".")
        if not all(parts) or not _writable(parts[0]):
            continue
        level = properties
        for parent in parts[:-1]:
            node = level.setdefault(parent, {"type": "object"})
            level = _container(node).setdefault("properties", {})
        level[parts[-1]] = field_schema(fields[path])  # parents come first: shallower paths are sorted first
    return properties


def static_lists_by_name(lists: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Name -> the Standard list ``write`` would use for it (the oldest by ``createdAt``, then ``id``)."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for entry in lists:
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        if entry.get("listType", STATIC_LIST_TYPE) != STATIC_LIST_TYPE:
            continue
        current = chosen.get(name)
        if current is None or _age(entry) < _age(current):
            chosen[name] = entry
    return chosen


def _age(entry: Mapping[str, Any]) -> tuple[Any, Any]:
    return (entry.get("createdAt") or 0, entry.get("id") or 0)


def _identifier_properties() -> dict[str, Any]:
    return {
        EMAIL: {"type": "string", "description": "The member's email address."},
        USER_ID: {"type": "string", "description": "The member's Iterable userId."},
    }


def _required(kind: str) -> list[str]:
    return [EMAIL] if kind == "email" else [USER_ID] if kind == "userid" else []


def _schema(description: str, kind: str, profile: dict[str, Any] | None) -> dict[str, Any]:
    properties = _identifier_properties()
    if profile is not None:
        properties.update(_copy(profile))
    schema: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "description": description,
        "properties": properties,
        # Subscribe modes may create new profile fields (Iterable adds unknown dataFields); unsubscribing only
        # needs the identifiers.
        "additionalProperties": profile is not None,
    }
    required = _required(kind)
    if required:
        schema["required"] = required
    else:
        schema["anyOf"] = [{"required": [EMAIL]}, {"required": [USER_ID]}]
    return schema


def _description(mode: DestinationSyncMode, target: str) -> str:
    return {
        DestinationSyncMode.append: f"Add each record's user to {target}, creating the list or the user when "
                                    "missing, and update the mapped profile fields.",
        DestinationSyncMode.update: f"Add each record's user to {target} only if Iterable already knows the user, "
                                    "and update the mapped profile fields.",
        DestinationSyncMode.soft_delete: f"Remove each record's user from {target}.",
        DestinationSyncMode.overwrite: f"Make {target} hold exactly the users of the stream: add the new ones and "
                                       "remove the members the stream no longer has.",
    }[mode]


def build_destination_catalog(lists: Sequence[Mapping[str, Any]], fields: Mapping[str, str], project_type: str,
                              *, sync_modes: Sequence[DestinationSyncMode | str] = DEFAULT_SYNC_MODES,
                              offer_new_list: bool = True) -> DestinationCatalog:
    """The operations for ``lists`` (``GET /api/lists``'s ``lists``) and ``fields`` (``getFields``' ``fields``).

    ``project_type``: ``email``, ``userid`` or ``hybrid`` (aliases such as ``userID-based`` are accepted).
    ``sync_modes``: which of append, update, soft_delete and overwrite to offer, in that order of output.
    """
    kind = normalize_project_type(project_type)
    modes = [DestinationSyncMode(mode) for mode in sync_modes]
    unsupported = [mode.value for mode in modes if mode not in SUPPORTED_SYNC_MODES]
    if unsupported:
        raise ValueError(f"Unsupported sync mode(s) for Iterable lists: {', '.join(unsupported)}.")
    keys = matching_keys(kind)
    profile = profile_properties(fields)
    targets: list[tuple[str, str]] = []
    if offer_new_list:
        targets.append((NEW_LIST_OBJECT_NAME, "the static list named after the stream (setting 'List name')"))
    by_name = static_lists_by_name(lists)
    for name in sorted(by_name, key=lambda n: (n.casefold(), n)):
        if name == NEW_LIST_OBJECT_NAME and offer_new_list:
            continue  # that object name already stands for the stream's own list
        targets.append((name, f"the Iterable static list '{name}' (id {by_name[name].get('id')})"))
    operations = [
        DestinationOperation(
            object_name=name,
            sync_mode=mode,
            json_schema=_schema(_description(mode, target), kind,
                                None if mode == DestinationSyncMode.soft_delete else profile),
            matching_keys=[list(key) for key in keys],
        )
        for name, target in targets
        for mode in modes
    ]
    return DestinationCatalog(operations=operations)


def catalog_to_json(catalog: DestinationCatalog) -> dict[str, Any]:
    """The catalog as the protocol's JSON object (``operations``, ``object_name``, ``sync_mode``, ...)."""
    return _CATALOG_SERIALIZER.dump(catalog)


def catalog_from_json(data: Mapping[str, Any]) -> DestinationCatalog:
    """The reverse of ``catalog_to_json``."""
    return _CATALOG_SERIALIZER.load(dict(data))


def destination_catalog_message(catalog: DestinationCatalog) -> dict[str, Any]:
    """The AirbyteMessage ``discover`` prints (one JSON line): ``{"type": "DESTINATION_CATALOG", ...}``."""
    return {"type": "DESTINATION_CATALOG", "destination_catalog": catalog_to_json(catalog)}
