"""Schemathesis over every operation of the OpenAPI document, against a real server process:
no 500 and no response that breaks the schema (issue 7). A bounded number of examples each."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from authgate.app import create_app
from authgate.config import Settings
from tests.e2e.support import HttpSink, ServerProcess

_doc = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
schema = schemathesis.openapi.from_dict(_doc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    # Every optional integration configured, so the fuzzer reaches past "not configured".
    with HttpSink(reply={}) as certs, HttpSink() as sms:
        proc = ServerProcess(
            workdir,
            {
                "AUTHGATE_LOG_LEVEL": "warning",
                "AUTHGATE_STRIPE_WEBHOOK_SECRET": "whsec_fuzz",
                "AUTHGATE_FIREBASE_PROJECT_ID": "fuzz-project",
                "AUTHGATE_FIREBASE_CERTS_URL": certs.url,
                "AUTHGATE_SMS_WEBHOOK_URL": sms.url,
            },
        ).start()
        yield proc
        proc.stop()
    log = proc.log()
    assert "Traceback" not in log, log[-4000:]


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_schema_conformance(case, server) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        base_url=server.url, checks=[not_a_server_error, response_schema_conformance], timeout=30
    )
