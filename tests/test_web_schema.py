"""The API against its own OpenAPI description: schemathesis generates requests from `/openapi.json`
(valid and invalid bodies of every declared content type, for every operation) and sends them to a
real server on 127.0.0.1, with all of its checks: no 5xx, every status and content type declared,
every answer of the declared shape, invalid data refused, valid data accepted.

The cases come from schemathesis's Hypothesis strategies (`schema.as_strategy`) in a plain test:
its pytest fixture loader (`schemathesis.pytest.from_fixture`) sets `Function._nodeid`, which pytest
9.2 no longer has.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from digitlab.inference import loading
from digitlab.web import server as web_server

# Requests per generation mode: enough to meet every operation and kind of body, few enough for
# about half a minute on 2 cores.
MAX_EXAMPLES = 100

CONFIG = SchemathesisConfig.from_dict({
    "cache": {"enabled": False},  # no .schemathesis/ folder in the working tree
    "checks": {
        # A body that fits the schema may still not be a digit: random PNG bytes are `bad_image`, a
        # blank 28x28 grid is `no_ink` (for /api/predict; /api/read reads it as ""). Both are the 422
        # the description declares, not a refusal of valid data.
        "positive_data_acceptance": {"expected-statuses": ["2xx", "422"]},
    },
})


@pytest.fixture(scope="module")
def address(tiny_run):
    with web_server.running(loading.load_classifier(tiny_run)) as address:
        yield address


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_to_its_openapi_description(address, mode):
    schema = schemathesis.openapi.from_url(f"{address}/openapi.json", config=CONFIG)
    seen = set()

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case):
        seen.add((case.method, case.path, case.media_type))
        case.call_and_validate(base_url=address, timeout=30)

    check()
    # Every operation and body type was met (the GETs take nothing that could be invalid).
    operations = {("POST", "/api/predict"), ("POST", "/api/read"), ("POST", "/api/look")} | (
        {("GET", "/api/health"), ("GET", "/api/model")} if mode.is_positive else set())
    assert {(method, path) for method, path, _ in seen} == operations, seen
    assert {media_type for _, _, media_type in seen} >= {"multipart/form-data", "application/json", "image/png"}
