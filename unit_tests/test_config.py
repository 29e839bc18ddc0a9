"""Config parsing: every problem is a ConfigError with a sentence that says what to fix."""

import pytest

from destination_iterable.config import parse_config, require_consent, validate_base_url
from destination_iterable.errors import ConfigError

BASE = {"api_key": "k" * 32, "privacy_consent": True}


def test_defaults():
    config = parse_config(BASE)
    assert config.base_url == "https://api.iterable.com"
    assert config.email_field == "email" and config.user_id_field is None
    assert config.list_name_template == "{stream}" and config.data_fields == ()
    assert config.mirror_max_removal_percent == 50.0 and not config.dry_run


def test_eu_data_center_host():
    assert parse_config({**BASE, "data_center": "EU"}).base_url == "https://api.eu.iterable.com"


@pytest.mark.parametrize("url", ["https://proxy.example.com", "http://127.0.0.1:8080", "http://localhost:1",
                                 "http://[::1]:9000/base/"])
def test_allowed_base_urls(url):
    assert validate_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.1:80", "ftp://127.0.0.1", "https://",
                                 "api.iterable.com"])
def test_refused_base_urls(url):
    with pytest.raises(ConfigError, match="https://"):
        validate_base_url(url)


@pytest.mark.parametrize("patch, fragment", [
    ({"api_key": ""}, "api_key"),
    ({"api_key": 123}, "api_key"),
    ({"data_center": "APAC"}, "data_center"),
    ({"privacy_consent": "yes"}, "privacy_consent"),
    ({"email_field": "", "user_id_field": ""}, "email_field"),
    ({"list_name_template": "   "}, "list_name_template"),
    ({"list_name_template": "{segment}"}, "unknown placeholder"),
    ({"list_name_template": "{stream"}, "not a valid template"),
    ({"data_fields": "first_name"}, "data_fields"),
    ({"data_fields": ["*", "a"]}, "mixes"),
    ({"data_fields": ["_airbyte_raw_id"]}, "internal"),
    ({"mirror_max_removal_percent": 150}, "between 0 and 100"),
    ({"mirror_max_removal_percent": True}, "mirror_max_removal_percent"),
    ({"max_requests_per_second": 0}, "greater than 0"),
    ({"retry_max_seconds": -1}, "greater than 0"),
])
def test_bad_settings_name_the_setting(patch, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, **patch})
    assert fragment in info.value.message


def test_consent_must_be_on():
    with pytest.raises(ConfigError, match="consent"):
        require_consent(parse_config({**BASE, "privacy_consent": False}))


def test_repr_never_shows_the_key():
    config = parse_config({**BASE, "api_key": "supersecretkey123"})
    assert "supersecretkey123" not in repr(config) and "supersecretkey123" not in str(config)
