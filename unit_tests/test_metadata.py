"""metadata.yaml is complete and valid for the Airbyte registry, and one version number is used everywhere.

The CDK's own ``MetadataFile`` model only requires a few fields and allows any others, so on top of it this
test checks every field the registry expects for a Python API destination, their values, and that ``data``
has no key outside Airbyte's metadata schema (``ConnectorMetadataDefinitionV0`` forbids unknown keys).
"""

from __future__ import annotations

import ast
import json
import re
import uuid
import xml.etree.ElementTree as ET  # noqa: N817 - parses our own icon.svg only (S405 does not apply)
from pathlib import Path
from typing import Any

import pytest
import yaml
from airbyte_cdk.models.connector_metadata import ConnectorLanguage, MetadataFile

import destination_iterable
from destination_iterable.config import DATA_CENTER_URLS

REPO_ROOT = Path(__file__).resolve().parent.parent
METADATA_PATH = REPO_ROOT / "metadata.yaml"
DOCS_PATH = REPO_ROOT / "docs" / "integrations" / "destinations" / "iterable.md"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
BASE_IMAGE = re.compile(r"^docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$")

# The keys of `data` in Airbyte's metadata schema (ConnectorMetadataDefinitionV0), all optional but the first.
REQUIRED_FIELDS = {"name", "definitionId", "connectorType", "dockerRepository", "dockerImageTag", "license",
                   "documentationUrl", "githubIssueLabel", "connectorSubtype", "releaseStage"}
OPTIONAL_FIELDS = {"icon", "supportLevel", "tags", "connectorBuildOptions", "registryOverrides", "allowedHosts",
                   "releases", "rolloutConfiguration", "migrationDocumentationUrl", "ab_internal", "remoteRegistries",
                   "connectorTestSuitesOptions", "resourceRequirements", "supportsRefreshes",
                   "supportsDataActivation", "supportsFileTransfer", "supportsDbt", "supportsNormalization",
                   "protocolVersion", "releaseDate", "maxSecondsBetweenMessages", "externalDocumentationUrls",
                   "erdUrl", "connectorIPCOptions", "generated", "normalizationConfig", "suggestedStreams",
                   "sourceType", "language", "githubIssueLabels", "connectorTestSuites"}
TEST_SUITES = {"unitTests": "unit_tests", "integrationTests": "integration_tests",
               "acceptanceTests": "acceptance-test-config.yml", "liveTests": None}


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return yaml.safe_load(METADATA_PATH.read_text())["data"]


def _setup_kwargs() -> dict[str, Any]:
    """The literal keyword arguments of setup() in setup.py."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    kwargs = {}
    for keyword in call.keywords:
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            kwargs[keyword.arg] = None  # computed (e.g. version=VERSION)
    return kwargs


def _setup_version() -> str:
    """What setup.py computes as the version (it reads destination_iterable/__init__.py)."""
    namespace: dict[str, Any] = {"__file__": str(REPO_ROOT / "setup.py")}
    source = (REPO_ROOT / "setup.py").read_text().split("\nsetup(")[0]  # everything before the setup() call
    exec(compile(source, "setup.py", "exec"), namespace)  # noqa: S102 - our own setup.py, without setup()
    return namespace["VERSION"]


def _changelog_versions() -> list[str]:
    text = DOCS_PATH.read_text()
    section = text.split("## Changelog", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    versions = [cells[1].strip() for cells in (row.split("|") for row in rows[2:])]  # skip header + separator
    return versions


def _dockerfile_labels() -> dict[str, str]:
    labels = {}
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("LABEL "):
            key, _, value = line[len("LABEL "):].partition("=")
            labels[key.strip()] = value.strip().strip('"')
    return labels


# ----------------------------------------------------------------------------------------------- the file
def test_metadata_validates_with_the_cdk_model(data):
    metadata = MetadataFile.from_file(METADATA_PATH)
    assert metadata.data.dockerRepository == "airbyte/destination-iterable"
    assert metadata.data.language == ConnectorLanguage.PYTHON
    assert yaml.safe_load(METADATA_PATH.read_text())["metadataSpecVersion"] == "1.0"


def test_metadata_has_every_registry_field_and_no_unknown_one(data):
    missing = REQUIRED_FIELDS - set(data)
    assert not missing, f"metadata.yaml lacks {sorted(missing)}"
    unknown = set(data) - REQUIRED_FIELDS - OPTIONAL_FIELDS
    assert not unknown, f"metadata.yaml has keys outside Airbyte's schema: {sorted(unknown)}"
    for key in ("icon", "supportLevel", "tags", "connectorBuildOptions", "allowedHosts", "supportsRefreshes",
                "connectorTestSuitesOptions", "remoteRegistries"):
        assert key in data, f"metadata.yaml lacks {key}"


def test_metadata_values(data):
    assert data["name"] == "Iterable"
    assert uuid.UUID(data["definitionId"]).version == 4 and str(uuid.UUID(data["definitionId"])) == data["definitionId"]
    assert data["connectorType"] == "destination"
    assert data["connectorSubtype"] == "api"
    assert data["dockerRepository"] == "airbyte/destination-iterable"
    assert SEMVER.match(data["dockerImageTag"])
    assert data["documentationUrl"] == "https://docs.airbyte.com/integrations/destinations/iterable"
    assert data["githubIssueLabel"] == "destination-iterable" == data["dockerRepository"].split("/")[1]
    assert data["license"] == "MIT"
    assert data["releaseStage"] in {"alpha", "beta", "generally_available", "custom"}
    assert data["supportLevel"] in {"community", "certified", "archived"}
    assert {"language:python", "cdk:python"} <= set(data["tags"])
    assert BASE_IMAGE.match(data["connectorBuildOptions"]["baseImage"]), "the base image must be pinned by digest"
    assert data["supportsRefreshes"] is True
    assert data["icon"] == "icon.svg" and (REPO_ROOT / "icon.svg").exists()


def test_allowed_hosts_are_the_data_center_hosts(data):
    hosts = {url.split("://", 1)[1] for url in DATA_CENTER_URLS.values()}
    assert set(data["allowedHosts"]["hosts"]) == hosts == {"api.iterable.com", "api.eu.iterable.com"}


def test_documentation_url_matches_the_spec(data):
    spec = json.loads((REPO_ROOT / "destination_iterable" / "spec.json").read_text())
    assert spec["documentationUrl"] == data["documentationUrl"]
    assert DOCS_PATH.exists()
    assert DOCS_PATH.read_text().splitlines()[0] == f"# {data['name']}"


def test_test_suites_point_at_existing_tests(data):
    suites = [entry["suite"] for entry in data["connectorTestSuitesOptions"]]
    assert suites and len(suites) == len(set(suites))
    for suite in suites:
        assert suite in TEST_SUITES, suite
        if TEST_SUITES[suite]:
            assert (REPO_ROOT / TEST_SUITES[suite]).exists(), suite


def test_pypi_entry_matches_the_package(data):
    kwargs = _setup_kwargs()
    pypi = data["remoteRegistries"]["pypi"]
    assert pypi["enabled"] is True
    assert pypi["packageName"] == kwargs["name"] == "airbyte-destination-iterable"
    assert kwargs["license"] == data["license"]
    assert "destination-iterable=destination_iterable.run:run" in kwargs["entry_points"]["console_scripts"]


def test_acceptance_config_names_the_image(data):
    config = yaml.safe_load((REPO_ROOT / "acceptance-test-config.yml").read_text())
    assert config["connector_image"] == f"{data['dockerRepository']}:dev"


# ----------------------------------------------------------------------------------------------- one version
def test_one_version_everywhere(data):
    version = destination_iterable.__version__
    assert SEMVER.match(version)
    assert _setup_version() == version, "setup.py must read __version__"
    assert data["dockerImageTag"] == version, "metadata.yaml dockerImageTag"
    assert _dockerfile_labels().get("io.airbyte.version") == version, "Dockerfile LABEL io.airbyte.version"
    assert _changelog_versions()[0] == version, "the newest changelog row of the docs"


def test_changelog_rows_are_unique_semvers_newest_first():
    versions = _changelog_versions()
    assert versions and all(SEMVER.match(v) for v in versions), versions
    keys = [tuple(int(part) for part in v.split("-")[0].split(".")) for v in versions]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)


# ----------------------------------------------------------------------------------------------- icon
def test_icon_is_a_square_svg():
    root = ET.parse(REPO_ROOT / "icon.svg").getroot()  # noqa: S314 - our own file
    assert root.tag.endswith("svg")
    view_box = [float(v) for v in root.attrib["viewBox"].split()]
    assert view_box[2] == view_box[3] > 0, "viewBox must be square"
    if "width" in root.attrib or "height" in root.attrib:
        assert root.attrib["width"] == root.attrib["height"]


# ----------------------------------------------------------------------------------------------- docs
DOC_LINKS = ["docs/integrations/destinations/iterable.md", "docs/architecture.md", "docs/sandbox.md",
             "docs/performance.md", "docs/reliability.md"]
WRITTEN_ELSEWHERE = {"docs/performance.md", "docs/reliability.md"}  # other work items write these


def test_readme_links_every_doc():
    readme = (REPO_ROOT / "README.md").read_text()
    for doc in DOC_LINKS:
        assert f"]({doc})" in readme, f"README.md does not link {doc}"
    missing = [doc for doc in DOC_LINKS if not (REPO_ROOT / doc).exists()]
    assert not set(missing) - WRITTEN_ELSEWHERE, f"README.md links missing docs: {missing}"
    if missing:
        pytest.skip(f"linked but not written yet: {', '.join(missing)}")


def test_readme_shows_exactly_the_two_setup_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    make_lines = [line.split("#")[0].strip() for line in readme.splitlines() if line.startswith("make ")]
    assert make_lines == ["make demo", "make test"]


def test_docs_page_has_airbyte_sections():
    text = DOCS_PATH.read_text()
    for heading in ("## Overview", "## Prerequisites", "## Setup guide", "## Supported sync modes",
                    "## Data privacy", "## Limitations", "### Rate limits", "## Troubleshooting", "## Changelog"):
        assert f"\n{heading}\n" in text, heading
    assert "<details>" in text.split("## Changelog", 1)[1], "Airbyte docs fold the changelog in <details>"


def test_docs_setup_guide_covers_every_spec_field():
    spec = json.loads((REPO_ROOT / "destination_iterable" / "spec.json").read_text())
    guide = DOCS_PATH.read_text().split("## Setup guide", 1)[1].split("\n## ", 1)[0]
    for name, prop in spec["connectionSpecification"]["properties"].items():
        assert f"(`{name}`)" in guide, f"the setup guide does not explain {name}"
        assert f"**{prop['title']}**" in guide, f"the setup guide does not use the UI title of {name}"
    for mode in spec["supported_destination_sync_modes"]:
        assert f"\n| `{mode}`" in DOCS_PATH.read_text(), f"the sync mode table lacks {mode}"


def test_docs_troubleshooting_lists_the_check_messages():
    troubleshooting = DOCS_PATH.read_text().split("## Troubleshooting", 1)[1]
    check_source = (REPO_ROOT / "destination_iterable" / "iterable" / "check.py").read_text()
    for sentence in ("Iterable did not accept the API key.", "it looks like a Read-only key",
                     "Could not reach Iterable at", "This API key belongs to a project in Iterable's"):
        assert sentence in check_source, f"check.py no longer says {sentence!r}: update the docs and this test"
        assert sentence in troubleshooting, sentence
    assert "Data-privacy consent is off. Turn on" in troubleshooting
