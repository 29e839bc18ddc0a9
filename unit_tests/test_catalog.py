"""Catalog validation happens before anything is written."""

import pytest

from destination_iterable.airbyte.catalog import streams_from_catalog
from destination_iterable.config import parse_config
from destination_iterable.errors import ConfigError
from integration_tests.harness import make_catalog, stream_entry

CONFIG = parse_config({"api_key": "k", "privacy_consent": True})


def test_modes_and_generations_are_read():
    catalog = make_catalog(stream_entry("vip", mode="overwrite", generation_id=3, minimum_generation_id=3),
                           stream_entry("news", mode="append_dedup"))
    vip, news = streams_from_catalog(catalog, CONFIG)
    assert vip.mirrors and vip.key == (None, "vip")
    assert not news.mirrors


@pytest.mark.parametrize("gen, min_gen, mirrors", [(3, 3, True), (3, 0, False), (None, None, False),
                                                   (5, 2, True), (0, 0, False)])
def test_refresh_generation_rules(gen, min_gen, mirrors):
    catalog = make_catalog(stream_entry("s", mode="overwrite", generation_id=gen, minimum_generation_id=min_gen))
    assert streams_from_catalog(catalog, CONFIG)[0].mirrors is mirrors


def test_unsupported_mode_names_the_stream():
    with pytest.raises(ConfigError, match="Stream 'vip' uses destination sync mode 'upsert'"):
        streams_from_catalog(make_catalog(stream_entry("vip", mode="upsert")), CONFIG)


def test_update_mode_is_accepted():
    assert streams_from_catalog(make_catalog(stream_entry("vip", mode="update")), CONFIG)[0].mode == "update"


def activation_entry(name, target, key, mode="append"):
    entry = stream_entry(name, mode=mode, primary_key=key, properties={"mail": {"type": "string"}})
    entry["destination_object_name"] = target
    return entry


def test_data_activation_stream_names_its_list_and_identifier():
    spec = streams_from_catalog(make_catalog(activation_entry("s", "VIP", [["userId"]])), CONFIG)[0]
    assert (spec.list_name, spec.identifier, spec.activation) == ("VIP", "userId", True)


def test_new_list_object_means_the_template_list():
    from destination_iterable.airbyte.discover import NEW_LIST_OBJECT_NAME

    spec = streams_from_catalog(make_catalog(activation_entry("s", NEW_LIST_OBJECT_NAME, [["email"]])), CONFIG)[0]
    assert (spec.list_name, spec.identifier) == (None, "email")


@pytest.mark.parametrize("key", [None, [], [["plan"]], [["email"], ["userId"]]])
def test_data_activation_stream_needs_one_matching_key(key):
    with pytest.raises(ConfigError, match="Stream 's' must match users on exactly one key"):
        streams_from_catalog(make_catalog(activation_entry("s", "VIP", key)), CONFIG)


def test_duplicate_streams_refused():
    with pytest.raises(ConfigError, match="appears twice"):
        streams_from_catalog(make_catalog("a", "a"), CONFIG)


def test_schema_without_identifier_refused():
    entry = stream_entry("vip", properties={"name": {"type": "string"}})
    with pytest.raises(ConfigError, match="Stream 'vip' has no field 'email'"):
        streams_from_catalog(make_catalog(entry), CONFIG)


def test_nested_identifier_is_looked_up_in_nested_schema():
    config = parse_config({"api_key": "k", "privacy_consent": True, "email_field": "contact.email"})
    ok = stream_entry("a", properties={"contact": {"type": "object", "properties": {"email": {"type": "string"}}}})
    loose = stream_entry("b", properties={"contact": {"type": "object"}})
    bad = stream_entry("c", properties={"contact": {"type": "object", "properties": {"phone": {}}}})
    assert len(streams_from_catalog(make_catalog(ok, loose), config)) == 2
    with pytest.raises(ConfigError, match="Stream 'c'"):
        streams_from_catalog(make_catalog(bad), config)


def test_schema_without_properties_is_accepted():
    assert streams_from_catalog(make_catalog("free"), CONFIG)[0].name == "free"


def test_user_id_field_alone_satisfies_schema_check():
    config = parse_config({"api_key": "k", "privacy_consent": True, "email_field": "", "user_id_field": "uid"})
    entry = stream_entry("u", properties={"uid": {"type": "string"}})
    assert streams_from_catalog(make_catalog(entry), config)[0].name == "u"


def test_catalog_without_streams_refused():
    with pytest.raises(ConfigError, match="streams"):
        streams_from_catalog({}, CONFIG)
