"""Fuzz every endpoint of a real server from its own OpenAPI spec (schemathesis): valid and invalid requests,
no answer is a 5xx and every answer matches the spec. Bounded examples keep it well under a minute.

Schemathesis' "positive data is accepted" check is left out: whether an upload is usable depends on its bytes
(a real NRRD, a zip of DICOM files), which no OpenAPI schema can say, so the server rightly answers 400 to
random bytes the spec cannot tell from a scan.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from server_fixtures import AUTH, running_server

EXAMPLES = 50


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    # a queue large enough that fuzzed submissions never fill it (503 is tested on its own)
    with running_server(tmp_path_factory.mktemp("fuzz"), queue_size=10_000, max_upload_bytes=2**20) as (url, _):
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def _operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


def test_the_spec_covers_every_endpoint(api_schema):
    labels = {operation.label for operation in _operations(api_schema)}
    assert labels == {"GET /health", "GET /info", "POST /jobs", "GET /jobs/{job_id}", "POST /jobs/{job_id}/cancel",
                      "DELETE /jobs/{job_id}", "GET /jobs/{job_id}/result"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_answers_match_the_spec(api_schema, mode):
    for operation in _operations(api_schema):
        if mode is GenerationMode.NEGATIVE and operation.label in ("GET /health", "GET /info"):
            continue  # nothing to make invalid: no parameters, no body
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

        check()
