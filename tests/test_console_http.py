"""The console over plain HTTP: its session cookie (HttpOnly, SameSite=Strict, Secure over
https behind a trusted proxy), the refusal of cross-site POSTs, the API never taking the
cookie, the live tail's resume, `console = false`, `console_content = false`, and the
vendored browser libraries' versions."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.conftest import (
    API_KEY,
    CONFIG,
    FIXTURES,
    helper,
    replay_model,
    start_server,
    stop_server,
    wait_for,
)
from tests.console_harness import Console, make_key, serve_console

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "src" / "propylon" / "api" / "console" / "static"


def _cookies(answer: httpx.Response) -> list[SimpleCookie]:
    found = []
    for header in answer.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        found.append(jar)
    return found


def _attributes(header: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}


def test_sign_in_cookie_is_httponly_strict_and_secure_over_https(console: Console) -> None:
    with httpx.Client(base_url=console.url) as http:
        plain = http.post(
            "/console/sign-in",
            data={"api_key": console.keys["acme"]},
            headers={"origin": console.url},
        )
    assert plain.status_code == 303
    [header] = plain.headers.get_list("set-cookie")
    assert {"httponly", "samesite", "path"} <= _attributes(header)
    assert "samesite=strict" in header.lower() and "path=/console" in header.lower()
    assert "key" not in header and console.keys["acme"] not in header  # a digest, signed

    # Behind a TLS-terminating proxy on loopback (in `forwarded_allow_ips`): https.
    with httpx.Client(base_url=console.url) as http:
        https = {"x-forwarded-proto": "https", "origin": console.url}
        signed = http.post(
            "/console/sign-in", data={"api_key": console.keys["acme"]}, headers=https
        )
        out = http.post("/console/sign-out", headers=https)
        refused = http.post("/console/sign-in", data={"api_key": "wrong"}, headers=https)
    assert signed.status_code == 303 and out.status_code == 303
    assert refused.status_code == 401 and not refused.headers.get_list("set-cookie")
    headers = signed.headers.get_list("set-cookie") + out.headers.get_list("set-cookie")
    assert len(headers) == 2
    for header in headers:  # no cookie without Secure when served over https
        assert {"secure", "httponly", "samesite"} <= _attributes(header), header


def test_the_session_reaches_the_console_only(console: Console) -> None:
    http = console.signed_in("acme")
    assert http.get("/console/interactions").status_code == 200
    session = http.cookies.get("propylon_console")
    assert session
    # The API never takes the cookie: a cross-site request riding it gets nowhere.
    api = httpx.get(
        f"{console.url}/v1beta/interactions", headers={"cookie": f"propylon_console={session}"}
    )
    assert api.status_code == 401
    # Without a session a page sends the browser to sign in; a forged cookie is no session.
    anonymous = httpx.get(f"{console.url}/console/interactions")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/console/sign-in"
    forged = httpx.get(
        f"{console.url}/console/interactions",
        headers={"cookie": f"propylon_console={session[:-2]}xx"},
    )
    assert forged.status_code == 303


def test_cross_site_posts_are_refused_and_change_nothing(console: Console) -> None:
    created = console.client("acme").interactions.create(model="echo", input="keep me")
    http = console.signed_in("acme")
    path = f"/console/interactions/{created.id}/delete"
    for headers in (
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site", "origin": console.url},
        {},  # neither header: not sent by the console's page
    ):
        refused = http.post(path, headers=headers)
        assert refused.status_code == 403, headers
        assert "cross-site" in refused.text or "console page itself" in refused.text
    assert console.client("acme").interactions.get(created.id).status == "completed"
    forged_sign_in = httpx.post(
        f"{console.url}/console/sign-in",
        data={"api_key": console.keys["acme"]},
        headers={"origin": "https://evil.example"},
    )
    assert forged_sign_in.status_code == 403 and not forged_sign_in.headers.get("set-cookie")
    # The console's own page (same origin) may.
    done = http.post(path, headers={"origin": console.url, "sec-fetch-site": "same-origin"})
    assert done.status_code == 303
    assert http.get(f"/console/interactions/{created.id}").status_code == 404


def test_live_tail_resumes_after_last_event_id(console: Console) -> None:
    created = console.client("acme").interactions.create(model="echo", input="one two three")
    http = console.signed_in("acme")
    url = f"/console/interactions/{created.id}/events"
    with connect_sse(http, "GET", url) as source:
        every = [e.id for e in source.iter_sse() if e.data != "[DONE]"]
    assert len(every) >= 4
    # What EventSource sends when it reconnects after a drop: the events after that one.
    with connect_sse(http, "GET", url, headers={"last-event-id": every[1]}) as source:
        rest = [e.id for e in source.iter_sse() if e.data != "[DONE]"]
    assert rest == every[2:]
    other = console.signed_in("globex")
    assert other.get(url).status_code == 404  # another tenant's stream: not found


def test_tenant_pages_answer_404_for_another_tenants_interaction(console: Console) -> None:
    created = console.client("acme").interactions.create(model="echo", input="acme only")
    globex = console.signed_in("globex")
    for path in ("", "/row", "/timeline"):
        answer = globex.get(f"/console/interactions/{created.id}{path}")
        assert answer.status_code == 404 and "acme only" not in answer.text
    for verb in ("cancel", "delete"):
        answer = globex.post(
            f"/console/interactions/{created.id}/{verb}", headers={"origin": console.url}
        )
        assert answer.status_code == 404
    assert console.client("acme").interactions.get(created.id).status == "completed"
    assert globex.get("/console/usage?tenant=acme").status_code == 403
    assert created.id not in globex.get("/console/interactions").text
    # The admin sees it, under its tenant.
    admin = console.signed_in("admin")
    assert created.id in admin.get("/console/interactions?tenant=acme").text


def test_tenant_keys_cannot_create_or_revoke_keys(console: Console) -> None:
    acme = console.signed_in("acme")
    made = acme.post(
        "/console/keys", data={"tenant": "acme", "name": "x"}, headers={"origin": console.url}
    )
    assert made.status_code == 403 and "pk-" not in made.text
    page = acme.get("/console/keys").text
    assert "globex" not in page  # the other tenant's keys are not listed


def test_bad_input_is_named(console: Console) -> None:
    admin = console.signed_in("admin")
    assert "`days`" in admin.get("/console/usage?days=0").text
    assert "`label_key`" in admin.get("/console/usage?group=label").text
    answer = admin.get("/console/interactions?status=nope")
    assert answer.status_code == 400 and "`status`" in answer.text
    made = admin.post(
        "/console/keys", data={"tenant": "t", "rpm": "many"}, headers={"origin": console.url}
    )
    assert made.status_code == 400 and "`rpm`" in made.text


def test_usage_csv_sums_the_tenants_usage(console: Console) -> None:
    # its own tenant: the other tests' interactions stay out of the sums
    key = make_key(console.server.data_dir, "csvco")
    console.keys["csvco"] = key
    wait_for(
        lambda: (
            httpx.get(
                f"{console.url}/v1beta/interactions", headers={"x-goog-api-key": key}
            ).status_code
            == 200
        )
    )
    client = console.client("csvco")
    made = [client.interactions.create(model="echo", input=f"csv {'word ' * n}") for n in (1, 5, 9)]
    rows = console.signed_in("csvco").get("/console/usage.csv?days=1").text.splitlines()
    assert rows[0] == "day,series,interactions,input_tokens,output_tokens,total_tokens,cost_usd"
    total = sum(int(line.split(",")[5]) for line in rows[1:])
    assert total == sum(i.usage.total_tokens for i in made)

    # A tenant's label value is data, never a spreadsheet formula in an admin's download
    planted = '=HYPERLINK("https://evil.example","x")'
    client.interactions.create(model="echo", input="csv", labels={"team": planted})
    admin = console.signed_in("admin")
    csv_text = admin.get("/console/usage.csv?days=1&group=label&label_key=team").text
    series = [row[1] for row in csv.reader(io.StringIO(csv_text))][1:]
    assert "'" + planted in series
    assert not any(value.startswith(("=", "+", "-", "@")) for value in series)


def test_vendored_libraries_are_the_pinned_ones() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for name, version in pinned.items():
        assert lock[f"node_modules/{name}"]["version"] == version
    assert f'version:"{pinned["htmx.org"]}"' in (STATIC / "htmx.min.js").read_text()
    assert f"Chart.js v{pinned['chart.js']}" in (STATIC / "chart.umd.min.js").read_text()[:200]
    assert f"Pico CSS ✨ v{pinned['@picocss/pico']}" in (STATIC / "pico.min.css").read_text()[:200]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    yield from serve_console(tmp_path_factory)


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a server with `console_content = false`, whose `gemini-replay` model
    answers recorded Gemini responses (tests/gemini_replay.py)."""
    data_dir = tmp_path_factory.mktemp("console-hidden")
    with helper("gemini_replay.py", str(FIXTURES), kill=True) as replay:
        gemini = replay_model(replay)
        running = start_server(data_dir, "console_content = false\n" + CONFIG + gemini)
        yield running.url
        stop_server(running)


def test_console_content_off_hides_prompts_and_outputs(variant: str) -> None:
    with httpx.Client(base_url=variant, headers={"x-goog-api-key": API_KEY}) as api:
        created = api.post(
            "/v1beta/interactions", json={"model": "echo", "input": "the secret recipe"}
        ).json()
    http = httpx.Client(base_url=variant)
    http.post("/console/sign-in", data={"api_key": API_KEY}, headers={"origin": variant})
    page = http.get(f"/console/interactions/{created['id']}").text
    assert "model_output" in page and "user_input" in page  # the steps are there
    assert "secret recipe" not in page
    assert re.search(r"\[\d+ characters hidden", page)
    with connect_sse(http, "GET", f"/console/interactions/{created['id']}/events") as source:
        streamed = "".join(e.data for e in source.iter_sse())
    assert "secret recipe" not in streamed and "step.delta" in streamed


@pytest.mark.parametrize(
    ("fixture", "options"),
    [
        ("image_output.json", {"response_modalities": ["text", "image"]}),
        ("google_search_stream.sse", {"tools": [{"type": "google_search"}]}),
    ],
)
def test_console_content_off_hides_media_and_citations_in_the_live_tail(
    variant: str, fixture: str, options: dict[str, Any]
) -> None:
    """Every output is hidden from the tail, not only text: a generated image's bytes, the
    results of a search and its citations too."""
    with httpx.Client(base_url=variant, headers={"x-goog-api-key": API_KEY}, timeout=60) as api:
        body = {"model": "gemini-replay", "input": f"generate_content/{fixture}", **options}
        created = api.post("/v1beta/interactions", json=body).json()
        steps = api.get(f"/v1beta/interactions/{created['id']}").json()["steps"]
    secrets = [
        value
        for step in steps
        if step["type"] != "user_input"
        for item in step.get("content", [step])
        for key in ("data", "text")
        if isinstance(value := item.get(key), str) and len(value) > 8
    ]
    secrets += re.findall(r'"(?:url|uri)": "([^"]+)"', json.dumps(steps))
    assert secrets, steps  # the recording has outputs to hide
    http = httpx.Client(base_url=variant)
    http.post("/console/sign-in", data={"api_key": API_KEY}, headers={"origin": variant})
    with connect_sse(http, "GET", f"/console/interactions/{created['id']}/events") as source:
        streamed = "".join(e.data for e in source.iter_sse())
    assert "step.delta" in streamed
    shown = [secret for secret in secrets if secret in streamed or json.dumps(secret) in streamed]
    assert shown == []
    page = html.unescape(http.get(f"/console/interactions/{created['id']}").text)
    assert [secret for secret in secrets if secret in page] == []


def test_console_off(tmp_path: Path) -> None:
    running = start_server(tmp_path, "console = false\n" + CONFIG)
    try:
        key = {"x-goog-api-key": API_KEY}
        for path in (
            "/console",
            "/console/sign-in",
            "/console/interactions",
            "/gemini/console/interactions",
            "/console/static/htmx.min.js",
        ):
            assert httpx.get(running.url + path, headers=key).status_code == 404, path
        assert httpx.get(running.url + "/console/sign-in").status_code == 401  # no key
    finally:
        stop_server(running)


def test_console_under_the_path_prefix(console: Console) -> None:
    http = httpx.Client(base_url=console.url)
    answer = http.post(
        "/gemini/console/sign-in",
        data={"api_key": console.keys["acme"]},
        headers={"origin": console.url},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/gemini/console/interactions"
    assert "path=/gemini/console" in answer.headers["set-cookie"].lower()
    page = http.get("/gemini/console/interactions")
    assert page.status_code == 200
    assert 'src="/gemini/console/static/htmx.min.js"' in page.text


def test_registering_a_webhook_shows_its_secret_once(console: Console) -> None:
    http = console.signed_in("acme")
    made = http.post(
        "/console/webhooks",
        data={
            "uri": "http://127.0.0.1:9/hook",
            "name": "from the console",
            "subscribed_events": ["interaction.completed"],
        },
        headers={"origin": console.url},
    )
    assert made.status_code == 200
    secret = re.search(r'id="new-secret" readonly value="(whsec_[^"]+)"', made.text)
    assert secret, made.text
    page = http.get("/console/keys").text
    assert "from the console" in page and secret.group(1) not in page
    bad = http.post(
        "/console/webhooks",
        data={"uri": "ftp://x", "subscribed_events": ["interaction.completed"]},
        headers={"origin": console.url},
    )
    assert bad.status_code == 400 and "uri" in bad.text


def test_a_server_that_never_had_a_key_needs_no_sign_in(tmp_path: Path) -> None:
    keyless = "\n".join(line for line in CONFIG.splitlines() if not line.startswith("api_keys"))
    running = start_server(tmp_path, keyless)
    try:
        with httpx.Client(base_url=running.url) as http:
            assert http.get("/console/sign-in").status_code == 303  # straight in
            page = http.get("/console/interactions")
            assert page.status_code == 200 and "admin" in page.text
    finally:
        stop_server(running)
