"""build_destination_catalog: operations from Iterable lists and user fields, and the protocol JSON it becomes."""

from __future__ import annotations

import json

import jsonschema
import pytest
from airbyte_cdk.models.airbyte_protocol_serializers import custom_type_resolver
from airbyte_protocol_dataclasses.models import AirbyteMessage, DestinationCatalog, DestinationSyncMode, Type
from serpyco_rs import Serializer

from destination_iterable.airbyte.discover import (
    DEFAULT_SYNC_MODES,
    NEW_LIST_OBJECT_NAME,
    build_destination_catalog,
    catalog_from_json,
    catalog_to_json,
    destination_catalog_message,
    field_schema,
    matching_keys,
    normalize_project_type,
    profile_properties,
    static_lists_by_name,
)

# A real GET /api/users/getFields answer (recorded in 2021 by Grouparoo's Iterable plugin tests).
RECORDED_FIELDS = {
    "name": "string", "itblInternal.regionCode": "string", "phoneNumberDetails": "object", "defaultAddress": "object",
    "phoneNumberDetails.updatedAt": "date", "Lifetime Value": "double", "Last Name 2": "string",
    "phoneNumberDetails.countryCodeISO": "string", "foo": "object", "devices.deviceId": "string",
    "devices.token": "string", "devices.appBuild": "string", "defaultAddress.number": "long",
    "phoneNumberDetails.lineType": "string", "phoneNumber": "string", "email": "string",
    "unsubscribedChannelIds": "long", "foo.name": "string", "defaultAddress.street": "string", "LTV": "double",
    "phoneNumberDetails.carrier": "string", "customField": "string", "devices.appPackageName": "string",
    "devices.iterableSdkVersion": "string", "emailListIds": "long", "foo.ltv": "double", "signupDate": "date",
    "Language": "string", "devices.endpointEnabled": "boolean", "devices.applicationName": "string",
    "itblInternal.emailDomain": "string", "profileUpdatedAt": "date", "defaultAddress.zipcode": "string",
    "signupSource": "string", "unsubscribedMessageTypeIds": "long", "userId": "string", "devices.appVersion": "string",
    "devices.platform": "string", "Number of Purchases": "long", "devices": "object",
    "devices.platformEndpoint": "string",
}
LISTS = [
    {"id": 30, "name": "VIP customers", "createdAt": 1700000000000, "listType": "Standard"},
    {"id": 31, "name": "churn risk", "createdAt": 1700000000001, "listType": "Standard"},
    {"id": 32, "name": "Engaged (dynamic)", "createdAt": 1700000000002, "listType": "Dynamic"},
    {"id": 33, "name": "Global suppression", "createdAt": 1700000000003, "listType": "Suppression"},
    {"id": 34, "name": "itbl internal", "createdAt": 1700000000004, "listType": "Internal"},
]
# The protocol's DestinationOperation (airbyte-protocol v0 airbyte_protocol.yaml), as JSON Schema.
OPERATION_SCHEMA = {
    "type": "object",
    "required": ["object_name", "sync_mode", "json_schema"],
    "properties": {
        "object_name": {"type": "string"},
        "sync_mode": {"type": "string", "enum": ["append", "overwrite", "append_dedup", "update", "soft_delete"]},
        "json_schema": {"type": "object"},
        "matching_keys": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
    },
}


def names(catalog: DestinationCatalog) -> list[str]:
    seen: list[str] = []
    for op in catalog.operations:
        if op.object_name not in seen:
            seen.append(op.object_name)
    return seen


def operation(catalog: DestinationCatalog, name: str, mode: str):
    [found] = [op for op in catalog.operations if op.object_name == name and op.sync_mode.value == mode]
    return found


# ------------------------------------------------------------------------------------------------ lists


def test_one_object_per_static_list_and_never_dynamic_suppression_or_internal():
    catalog = build_destination_catalog(LISTS, {}, "email")
    assert names(catalog) == [NEW_LIST_OBJECT_NAME, "churn risk", "VIP customers"]
    assert [op.sync_mode for op in catalog.operations[:4]] == list(DEFAULT_SYNC_MODES)
    assert len(catalog.operations) == 3 * 4


def test_lists_sharing_a_name_are_one_object_resolved_like_write():
    lists = [
        {"id": 9, "name": "Newsletter", "createdAt": 200, "listType": "Standard"},
        {"id": 8, "name": "Newsletter", "createdAt": 100, "listType": "Standard"},
        {"id": 7, "name": "Newsletter", "createdAt": 100, "listType": "Standard"},
        {"id": 6, "name": "Newsletter", "createdAt": 50, "listType": "Dynamic"},
        {"id": 5, "name": "No type given"},
    ]
    assert static_lists_by_name(lists)["Newsletter"]["id"] == 7  # oldest createdAt, then lowest id
    catalog = build_destination_catalog(lists, {}, "email", offer_new_list=False)
    assert names(catalog) == ["Newsletter", "No type given"]  # a list without listType is a static list
    assert "(id 7)" in operation(catalog, "Newsletter", "append").json_schema["description"]


def test_a_name_that_is_only_dynamic_is_not_offered_and_blank_names_are_skipped():
    lists = [{"id": 1, "name": "Segment A", "listType": "Dynamic"}, {"id": 2, "name": "  ", "listType": "Standard"},
             {"id": 3, "name": None, "listType": "Standard"}]
    assert names(build_destination_catalog(lists, {}, "hybrid")) == [NEW_LIST_OBJECT_NAME]


def test_new_list_object_can_be_left_out_and_a_real_list_with_its_name_does_not_duplicate_it():
    lists = [{"id": 1, "name": NEW_LIST_OBJECT_NAME, "listType": "Standard"}]
    assert names(build_destination_catalog(lists, {}, "email")) == [NEW_LIST_OBJECT_NAME]
    assert names(build_destination_catalog(lists, {}, "email", offer_new_list=False)) == [NEW_LIST_OBJECT_NAME]
    assert names(build_destination_catalog([], {}, "email", offer_new_list=False)) == []


def test_sync_modes_can_be_chosen_and_only_list_modes_exist():
    catalog = build_destination_catalog(LISTS[:1], {}, "email", sync_modes=["soft_delete", "append"],
                                        offer_new_list=False)
    assert [op.sync_mode.value for op in catalog.operations] == ["soft_delete", "append"]
    with pytest.raises(ValueError, match="append_dedup"):
        build_destination_catalog(LISTS, {}, "email", sync_modes=["append_dedup"])


# ------------------------------------------------------------------------------------------------ identity


@pytest.mark.parametrize(("project_type", "keys", "required"), [
    ("email", [["email"]], ["email"]),
    ("email-based", [["email"]], ["email"]),
    ("userID-based", [["userId"]], ["userId"]),
    ("userid", [["userId"]], ["userId"]),
    ("hybrid", [["email"], ["userId"]], None),
])
def test_matching_keys_and_required_identifiers_follow_the_project_type(project_type, keys, required):
    catalog = build_destination_catalog(LISTS[:1], RECORDED_FIELDS, project_type)
    assert matching_keys(project_type) == keys
    for op in catalog.operations:
        assert op.matching_keys == keys
        assert op.json_schema.get("required") == required
        assert {"email", "userId"} <= set(op.json_schema["properties"])


def test_hybrid_records_need_one_identifier():
    schema = operation(build_destination_catalog(LISTS[:1], {}, "hybrid"), "VIP customers", "append").json_schema
    validator = jsonschema.Draft7Validator(schema)
    assert validator.is_valid({"email": "a@x.com"}) and validator.is_valid({"userId": "u1"})
    assert not validator.is_valid({"plan": "gold"})


def test_unknown_project_type():
    with pytest.raises(ValueError, match="project type"):
        normalize_project_type("phone-based")


# ------------------------------------------------------------------------------------------------ fields


@pytest.mark.parametrize(("iterable_type", "schema"), [
    ("string", {"type": "string"}),
    ("long", {"type": "integer"}),
    ("double", {"type": "number"}),
    ("boolean", {"type": "boolean"}),
    ("Boolean", {"type": "boolean"}),
    ("date", {"type": "string", "format": "date-time"}),
    ("object", {"type": "object"}),
    ("array", {"type": "array"}),
    ("nested", {"type": "array", "items": {"type": "object"}}),
    ("geo_location", {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}}),
    ("vector", {"description": "Iterable type 'vector'"}),
])
def test_iterable_types_map_to_json_schema(iterable_type, schema):
    assert field_schema(iterable_type) == schema
    jsonschema.Draft7Validator.check_schema(schema)


def test_profile_fields_from_a_real_get_fields_answer():
    properties = profile_properties(RECORDED_FIELDS)
    assert sorted(properties) == ["LTV", "Language", "Last Name 2", "Lifetime Value", "Number of Purchases",
                                  "customField", "defaultAddress", "foo", "name", "phoneNumber"]
    assert properties["defaultAddress"] == {"type": "object", "properties": {
        "number": {"type": "integer"}, "street": {"type": "string"}, "zipcode": {"type": "string"}}}
    assert properties["Lifetime Value"] == {"type": "number"}


def test_nested_paths_under_arrays_and_under_scalars():
    properties = profile_properties({"orders": "nested", "orders.sku": "string", "orders.total": "double",
                                     "legacy": "string", "legacy.code": "long", "orphan.child": "boolean",
                                     "_airbyte_extracted_at": "date", "a..b": "string"})
    assert properties["orders"] == {"type": "array", "items": {"type": "object", "properties": {
        "sku": {"type": "string"}, "total": {"type": "number"}}}}
    assert properties["legacy"] == {"type": "object", "properties": {"code": {"type": "integer"}}}
    assert properties["orphan"] == {"type": "object", "properties": {"child": {"type": "boolean"}}}
    assert "_airbyte_extracted_at" not in properties and "a" not in properties


def test_unsubscribe_takes_identifiers_only_and_subscribe_modes_take_profile_fields():
    catalog = build_destination_catalog(LISTS[:1], RECORDED_FIELDS, "email", offer_new_list=False)
    delete = operation(catalog, "VIP customers", "soft_delete").json_schema
    assert set(delete["properties"]) == {"email", "userId"} and delete["additionalProperties"] is False
    for mode in ("append", "update", "overwrite"):
        schema = operation(catalog, "VIP customers", mode).json_schema
        assert "Lifetime Value" in schema["properties"] and schema["additionalProperties"] is True


def test_every_json_schema_is_a_draft7_schema_and_descriptions_say_what_happens():
    catalog = build_destination_catalog(LISTS, RECORDED_FIELDS, "userid")
    for op in catalog.operations:
        jsonschema.Draft7Validator.check_schema(op.json_schema)
    assert "remove the members" in operation(catalog, "VIP customers", "overwrite").json_schema["description"]
    assert "already knows" in operation(catalog, "VIP customers", "update").json_schema["description"]
    assert "Remove" in operation(catalog, NEW_LIST_OBJECT_NAME, "soft_delete").json_schema["description"]


def test_the_catalog_does_not_share_schema_objects_between_operations():
    catalog = build_destination_catalog(LISTS[:2], RECORDED_FIELDS, "email")
    first, second = catalog.operations[0].json_schema, catalog.operations[4].json_schema
    first["properties"]["defaultAddress"]["properties"]["number"]["type"] = "string"
    assert second["properties"]["defaultAddress"]["properties"]["number"]["type"] == "integer"


# ------------------------------------------------------------------------------------------------ protocol JSON


def test_message_uses_the_protocol_keys_and_round_trips():
    catalog = build_destination_catalog(LISTS, RECORDED_FIELDS, "hybrid")
    line = json.dumps(destination_catalog_message(catalog))
    message = json.loads(line)
    assert set(message) == {"type", "destination_catalog"} and message["type"] == "DESTINATION_CATALOG"
    assert set(message["destination_catalog"]) == {"operations"}
    validator = jsonschema.Draft7Validator(OPERATION_SCHEMA)
    for op in message["destination_catalog"]["operations"]:
        assert set(op) == {"object_name", "sync_mode", "json_schema", "matching_keys"}
        validator.validate(op)
    assert catalog_from_json(message["destination_catalog"]) == catalog
    assert catalog_to_json(catalog) == message["destination_catalog"]

    # The protocol package's own AirbyteMessage reads the line back (airbyte-cdk's AirbyteMessage lacks the field).
    serializer = Serializer(AirbyteMessage, omit_none=True, custom_type_resolver=custom_type_resolver)
    loaded = serializer.load(message)
    assert loaded.type == Type.DESTINATION_CATALOG and loaded.destination_catalog == catalog
    assert loaded.destination_catalog.operations[0].sync_mode == DestinationSyncMode.append
