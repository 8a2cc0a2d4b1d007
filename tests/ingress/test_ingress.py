"""The HTTP ingress over real HTTP on loopback, in front of a real nats-server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from ingress_support import RunningIngress, running_ingress
from nats.js import JetStreamContext

from syncbus_client import RequestReceipt
from syncbus_devstack import NatsServer
from syncbus_ingress.auth import ApiKeyConfigError, ApiKeys, digest_of
from syncbus_ingress.settings import IngressSettings
from syncbus_shared import topology as t
from syncbus_shared.contracts import SyncRequest, SyncResult, SyncStatus, utc_now
from syncbus_shared.natsclient import connect
from syncbus_shared.provision import provision
from syncbus_shared.settings import NatsSettings


def _voucher(amount: object = "125.00") -> dict[str, object]:
    return {
        "voucher_id": "v1",
        "period_id": "2017-01",
        "transaction_date": "2017-01-10",
        "posting_date": "2017-01-10",
        "lines": [
            {"record_id": "1", "account_id": "6300", "debit": amount},
            {"record_id": "2", "account_id": "1920", "credit": amount},
        ],
    }


async def _publish_result(js: JetStreamContext, integration_id: str, request_id: str) -> None:
    result = SyncResult(
        request_id=request_id,
        integration_id=integration_id,
        idempotency_key=f"{integration_id}:2017-01",
        status=SyncStatus.SUCCEEDED,
        vouchers=3,
    )
    await js.publish(
        t.result_subject(integration_id),
        result.to_bytes(),
        headers={"Nats-Msg-Id": f"result:{request_id}"},
    )


async def _eventually_ok(call: Callable[[], object], timeout: float = 30.0) -> httpx.Response:
    """Poll an HTTP endpoint until 200: the answer is the signal waited for."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await call()  # type: ignore[misc]
        assert isinstance(response, httpx.Response)
        if response.status_code == 200 or loop.time() > deadline:
            return response
        await asyncio.sleep(0.1)


async def test_a_minimal_request_is_published_with_its_key_and_answered_with_the_receipt(
    ingress: RunningIngress, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("web")
    response = await ingress.post({"integration_id": integration, "period_id": "2017-01"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"request_id", "idempotency_key", "duplicate"}
    assert body["idempotency_key"] == f"{integration}:2017-01"
    assert body["duplicate"] is False
    stored = await jetstream.get_last_msg(t.STREAM_REQUESTS, t.request_subject(integration))
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == f"{integration}:2017-01"
    request = SyncRequest.from_bytes(stored.data or b"")
    assert request.request_id == body["request_id"]
    assert request.origin.value == "application"


async def test_the_same_key_posted_again_is_a_duplicate_of_the_first_request(
    ingress: RunningIngress, unique_id: Callable[..., str]
):
    body = {
        "integration_id": unique_id("web"),
        "vouchers": [_voucher()],
        "idempotency_key": "webhook-4711",
    }
    first = (await ingress.post(body)).json()
    again = (await ingress.post(body)).json()
    assert again == {**first, "duplicate": True}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "the body is not JSON"),
        (b"", "the body is empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object, not a JSON list"),
        (b'{"integration_id": "web", "period_id": NaN}', "NaN is not a JSON value"),
        ({"integration_id": "web"}, "needs a period_id or inline vouchers"),
        (
            {"integration_id": "web.dot", "period_id": "2017-01"},
            "integration_id: an integration id",
        ),
        ({"integration_id": "web", "period_id": "Jan"}, "period_id: a period id"),
        ({"integration_id": "web", "period": "2017-01"}, "unknown field 'period'"),
        (
            {"integration_id": "web", "period_id": "2017-01", "origin": "scheduler"},
            "set by syncbus",
        ),
        (
            {"integration_id": "web", "idempotency_key": "k", "vouchers": [_voucher(125.0)]},
            "vouchers.0.lines.0.debit: amount 125.0 must be a decimal string",
        ),
        (
            {"integration_id": "web", "idempotency_key": "k", "vouchers": [_voucher("-")]},
            "is not a decimal",
        ),
    ],
)
async def test_a_bad_body_gets_400_with_a_message_naming_what_is_wrong(
    ingress: RunningIngress, jetstream: JetStreamContext, body: object, says: str
):
    before = (await jetstream.stream_info(t.STREAM_REQUESTS)).state.messages
    response = await ingress.post(body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "invalid_request"
    assert says in answer["message"]
    assert isinstance(answer["problems"], list)
    assert (await jetstream.stream_info(t.STREAM_REQUESTS)).state.messages == before


_TESTER_BODY = (
    b'{"integration_id": "inc-xl", "integration_id": "toyen-xledger", "period_id": "2017-03"}'
)


def _voucher_json(second_line_extra: str) -> str:
    """The JSON text of one voucher; `second_line_extra` is spliced raw into its second line."""
    return (
        '{"voucher_id": "v1", "period_id": "2017-01", "transaction_date": "2017-01-10", '
        '"posting_date": "2017-01-10", "lines": ['
        '{"record_id": "1", "account_id": "6300", "debit": "125.00"}, '
        f'{{"record_id": "2", "account_id": "1920", "credit": "125.00"{second_line_extra}}}]}}'
    )


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (_TESTER_BODY, "integration_id"),
        (b'{"integration_id": "web", "period_id": "2017-01", "period_id": "2017-01"}', "period_id"),
        (
            (
                '{"integration_id": "web", "idempotency_key": "k", "vouchers": ['
                + _voucher_json(', "credit": "0.01"')
                + "]}"
            ).encode(),
            "vouchers.0.lines.1.credit",
        ),
    ],
    ids=["the tester's integration_id", "period_id, same value", "in a voucher line"],
)
async def test_a_key_given_twice_at_any_depth_gets_400_naming_it_and_nothing_is_published(
    ingress: RunningIngress, jetstream: JetStreamContext, body: bytes, key: str
):
    response = await ingress.post(body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "invalid_request"
    assert answer["message"] == f"the body gives `{key}` twice; give each key once"
    assert answer["problems"] == [{"field": key, "message": "given twice; give each key once"}]
    assert (await jetstream.stream_info(t.STREAM_REQUESTS)).state.messages == 0


async def test_the_same_keys_in_different_objects_are_not_a_repeat(
    ingress: RunningIngress, unique_id: Callable[..., str]
):
    # Every line has record_id, account_id, ...; the voucher and the request both have period_id.
    integration = unique_id("web")
    body = (
        f'{{"integration_id": "{integration}", "idempotency_key": "k", "period_id": "2017-01", '
        f'"vouchers": [{_voucher_json("")}]}}'
    )
    response = await ingress.post(body.encode())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"integration_id": "web", "period_id": "2017-01", "x": ' + b"[" * 32 + b"]" * 32 + b"}",
        b'{"a": ' * 40 + b"1" + b"}" * 40,
        b'{"integration_id": "web", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    ],
    ids=["33 levels", "40 objects", "200,000 levels"],
)
async def test_a_body_nested_too_deeply_gets_400_and_not_a_server_error(
    ingress: RunningIngress, jetstream: JetStreamContext, body: bytes
):
    response = await ingress.post(body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "the body is nested more than 32 levels deep" in response.json()["message"]
    assert (await jetstream.stream_info(t.STREAM_REQUESTS)).state.messages == 0


async def test_inline_vouchers_with_dimensions_are_not_too_deep(
    ingress: RunningIngress, unique_id: Callable[..., str]
):
    voucher = _voucher()
    voucher["lines"][0]["dimensions"] = [  # type: ignore[index]
        {"analysis_type": "A", "analysis_id": "dept-10", "amount": "125.00"}
    ]
    body = {"integration_id": unique_id("web"), "idempotency_key": "k", "vouchers": [voucher]}
    response = await ingress.post(body)
    assert response.status_code == 200, response.text


async def test_a_request_id_in_the_body_is_refused_so_no_caller_can_take_another_requests_id(
    ingress: RunningIngress, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    # The tester's case: R is the first request's id; a second request under another key
    # naming R would have had its result served under R.
    integration = unique_id("inc-xl")
    first = await ingress.post({"integration_id": integration, "period_id": "2017-03"})
    assert first.status_code == 200
    taken = first.json()["request_id"]
    for request_id in (taken, "a-fresh-id-nobody-used"):
        refused = await ingress.post(
            {"integration_id": integration, "period_id": "2016-11", "request_id": request_id}
        )
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "invalid_request",
            "message": "'request_id' is assigned by the ingress; leave it out and take the id "
            "from the answer",
            "problems": [
                {"field": "request_id", "message": "assigned by the ingress; leave it out"}
            ],
        }
    info = await jetstream.stream_info(t.STREAM_REQUESTS)
    assert info.state.messages == 1
    stored = await jetstream.get_last_msg(t.STREAM_REQUESTS, t.request_subject(integration))
    request = SyncRequest.from_bytes(stored.data or b"")
    assert (request.request_id, request.period_id) == (taken, "2017-03")
    await _publish_result(jetstream, integration, taken)
    found = await _eventually_ok(lambda: ingress.result(taken))
    assert found.status_code == 200
    assert found.json()["idempotency_key"] == f"{integration}:2017-01"  # what _publish_result says


async def test_posting_the_same_body_again_gives_back_the_id_the_ingress_assigned(
    ingress: RunningIngress, unique_id: Callable[..., str]
):
    # Why a caller needs no request_id of its own: a retry finds its first request.
    body = {"integration_id": unique_id("web"), "period_id": "2017-01"}
    first = (await ingress.post(body)).json()
    retried = (await ingress.post(body)).json()
    assert retried["request_id"] == first["request_id"]
    assert retried["duplicate"] is True


async def test_a_body_over_the_limit_gets_413(nats_server: NatsServer, jetstream: JetStreamContext):
    async with running_ingress(nats_server.url, max_body_bytes=200) as ingress:
        response = await ingress.post({"integration_id": "web", "idempotency_key": "x" * 300})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_without_a_valid_api_key_the_answer_is_401_and_nothing_is_published(
    ingress: RunningIngress, jetstream: JetStreamContext
):
    body = {"integration_id": "web", "period_id": "2017-01"}
    missing = await ingress.http.post("/v1/sync-requests", json=body)
    wrong = await ingress.post(body, key="not-the-key")
    basic = await ingress.http.post(
        "/v1/sync-requests", json=body, headers={"Authorization": f"Basic {ingress.key}"}
    )
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"] == "unauthorized"
    assert "API key is required" in missing.json()["message"]
    assert wrong.json()["message"] == "the API key is not valid"
    assert (await jetstream.stream_info(t.STREAM_REQUESTS)).state.messages == 0
    result = await ingress.http.get("/v1/sync-results/abc")
    assert result.status_code == 401


async def test_the_x_api_key_header_is_accepted_as_well(ingress: RunningIngress):
    response = await ingress.http.post(
        "/v1/sync-requests",
        json={"integration_id": "web", "period_id": "2017-01"},
        headers={"X-API-Key": ingress.key},
    )
    assert response.status_code == 200


async def test_a_result_is_404_until_the_dispatcher_publishes_it_then_200(
    ingress: RunningIngress, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("web")
    receipt = (await ingress.post({"integration_id": integration, "period_id": "2017-01"})).json()
    missing = await ingress.result(receipt["request_id"])
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "message": f"no result for request {receipt['request_id']!r} yet",
    }
    await _publish_result(jetstream, integration, receipt["request_id"])
    found = await _eventually_ok(lambda: ingress.result(receipt["request_id"]))
    assert found.status_code == 200
    result = SyncResult.model_validate_json(found.content)
    assert (result.request_id, result.status, result.vouchers) == (
        receipt["request_id"],
        SyncStatus.SUCCEEDED,
        3,
    )


async def test_results_stored_before_the_ingress_started_are_served_once_it_is_ready(
    nats_server: NatsServer, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("web")
    for n in range(20):
        await _publish_result(jetstream, integration, f"old-{n}")
    async with running_ingress(nats_server.url) as ingress:
        ready = await ingress.http.get("/readyz")
        assert ready.json() == {"status": "ready", "nats": "connected", "results": "caught_up"}
        for n in (0, 19):
            response = await ingress.result(f"old-{n}")
            assert response.status_code == 200
            assert response.json()["request_id"] == f"old-{n}"


async def test_it_is_live_but_not_ready_until_nats_can_be_reached(tmp_path: Path):
    server = NatsServer(tmp_path / "nats", log_path=tmp_path / "nats.log")
    await server.start()
    url = server.url
    await server.stop()  # the port is now known, and nothing listens on it
    async with running_ingress(url, wait_ready=False, nats_connect_timeout_seconds=1) as ingress:
        assert (await ingress.http.get("/healthz")).json() == {"status": "ok"}
        not_ready = await ingress.http.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["nats"] == "disconnected"
        refused = await ingress.post({"integration_id": "web", "period_id": "2017-01"})
        assert refused.status_code == 503
        assert refused.json()["error"] == "unavailable"
        await server.start()  # same port
        nc = await connect(NatsSettings(url=url), "pytest-provision")
        await provision(nc.jetstream())
        await nc.close()
        await asyncio.wait_for(ingress.ready.wait(), 60)
        assert (await ingress.http.get("/readyz")).status_code == 200
        accepted = await ingress.post({"integration_id": "web", "period_id": "2017-01"})
        assert accepted.status_code == 200
    await server.stop()


async def test_after_nats_restarts_it_publishes_and_serves_new_results_again(
    ingress: RunningIngress,
    nats_server: NatsServer,
    jetstream: JetStreamContext,
    unique_id: Callable[..., str],
):
    integration = unique_id("web")
    await nats_server.restart()
    ready = await _eventually_ok(lambda: ingress.http.get("/readyz"), timeout=60)
    assert ready.status_code == 200
    posted = await _eventually_ok(
        lambda: ingress.post({"integration_id": integration, "period_id": "2017-01"}), timeout=60
    )
    assert posted.status_code == 200
    request_id = posted.json()["request_id"]
    await _publish_result(jetstream, integration, request_id)
    found = await _eventually_ok(lambda: ingress.result(request_id), timeout=60)
    assert found.status_code == 200


async def test_metrics_count_answers_by_route_and_status_in_prometheus_text(
    ingress: RunningIngress,
):
    await ingress.post({"integration_id": "web", "period_id": "2017-01"})
    await ingress.post(b"nope")
    await ingress.post({"integration_id": "web", "period_id": "2017-01"}, key="wrong")
    await ingress.result("nothing-yet")
    response = await ingress.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    route = 'route="/v1/sync-requests"'
    assert f'syncbus_ingress_http_requests_total{{method="POST",{route},status="200"}} 1.0' in text
    assert f'syncbus_ingress_http_requests_total{{method="POST",{route},status="400"}} 1.0' in text
    assert f'syncbus_ingress_http_requests_total{{method="POST",{route},status="401"}} 1.0' in text
    assert 'route="/v1/sync-results/{request_id}",status="404"' in text
    assert 'syncbus_ingress_sync_requests_total{outcome="accepted"} 1.0' in text
    assert 'syncbus_ingress_sync_requests_total{outcome="invalid"} 1.0' in text
    assert "syncbus_ingress_nats_connected 1.0" in text
    assert "syncbus_ingress_ready 1.0" in text
    assert "nothing-yet" not in text  # route templates, not raw paths, as labels


async def test_an_unknown_path_or_method_gets_a_json_error(ingress: RunningIngress):
    missing = await ingress.http.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = await ingress.http.get("/v1/sync-requests", headers=ingress.auth())
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


def test_hash_key_prints_the_sha256_digest_of_the_key_on_stdin():
    done = subprocess.run(
        [sys.executable, "-m", "syncbus_ingress", "hash-key"],
        input="s3cret-key\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == digest_of("s3cret-key")
    assert len(done.stdout.strip()) == 64


def test_digests_come_from_the_environment_and_a_file_with_labels_and_comments(tmp_path: Path):
    path = tmp_path / "keys"
    path.write_text(f"# the billing system\nbilling={digest_of('b')}\n\n{digest_of('c')}  # cron\n")
    keys = ApiKeys.from_settings(
        IngressSettings(api_key_hashes=f"erp={digest_of('a')}", api_key_hashes_file=path)
    )
    assert len(keys) == 3
    assert keys.check("a") == "erp"
    assert keys.check("b") == "billing"
    assert keys.check("c") == f"key-{digest_of('c')[:8]}"
    assert keys.check("d") is None
    assert keys.check("") is None


def test_a_configured_key_that_is_not_a_digest_is_refused_without_repeating_it():
    with pytest.raises(ApiKeyConfigError) as caught:
        ApiKeys.from_settings(IngressSettings(api_key_hashes=f"{digest_of('a')},my-raw-s3cret"))
    assert "entry 2 is not a SHA-256 hex digest" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_json_of_the_receipt_keeps_the_contract_field_names():
    # The three names are the HTTP contract (DESIGN section 7); the client's receipt gives them.
    receipt = RequestReceipt("r", "k", False, "web", 1, utc_now())  # noqa: FBT003
    assert json.loads(json.dumps(receipt.as_dict())) == {
        "request_id": "r",
        "idempotency_key": "k",
        "duplicate": False,
    }
