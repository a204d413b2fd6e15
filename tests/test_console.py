"""The console in a real browser: Debian's Chromium, headless, driven by Playwright, against
the real server, with interactions made through the google-genai SDK."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from tests.console_harness import CHROMIUM, Console, require_chromium, serve_console

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    yield from serve_console(tmp_path_factory)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    require_chromium()
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())  # the console's confirm() prompts
    yield opened
    context.close()


def sign_in(page: Page, console: Console, who: str) -> None:
    page.goto(f"{console.url}/console")
    expect(page).to_have_url(f"{console.url}/console/sign-in")
    page.get_by_label("API key").fill(console.keys[who])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{console.url}/console/interactions")


def row_ids(page: Page) -> list[str]:
    return page.locator("#results tbody tr[id^=row-]").evaluate_all(
        "rows => rows.map(r => r.id.slice(4))"
    )


def test_sign_in_then_the_table_lists_and_filters(page: Page, console: Console) -> None:
    client = console.client("acme")
    search = client.interactions.create(model="echo", input="hello", labels={"team": "search"})
    ads = client.interactions.create(model="echo", input="hi", labels={"team": "ads"})
    call = client.interactions.create(
        model="echo",
        tools=[WEATHER],
        input='call get_weather {"location": "Rome"}',
        labels={"team": "ads"},
    )
    assert call.status == "requires_action"

    page.goto(f"{console.url}/console/interactions")  # no session yet: the sign-in page
    expect(page.get_by_label("API key")).to_be_visible()
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    sign_in(page, console, "acme")
    listed = row_ids(page)
    assert {search.id, ads.id, call.id} <= set(listed)
    created = page.locator("#results tbody td.when").all_inner_texts()
    assert created == sorted(created, reverse=True)  # newest first (to the second)

    page.get_by_label("Labels").fill("team:ads")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"label=team%3Aads"))
    expect(page.locator(f"#row-{search.id}")).to_have_count(0)
    assert set(row_ids(page)) == {ads.id, call.id}

    page.get_by_label("requires_action").check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator(f"#row-{ads.id}")).to_have_count(0)
    assert row_ids(page) == [call.id]
    expect(page.locator(f"#row-{call.id} .status")).to_have_text("requires_action")

    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Id contains").fill(search.id[5:15])
    page.get_by_label("Id contains").press("Enter")  # the keyboard submits the filters
    expect(page.locator("#results tbody tr[id^=row-]")).to_have_count(1)
    assert row_ids(page) == [search.id]


def step_types(page: Page) -> list[str]:
    return page.locator("#timeline li.step").evaluate_all(
        "items => items.map(i => i.dataset.stepType)"
    )


def test_one_interaction_shows_its_steps_a_function_round_trip_and_usage(
    page: Page, console: Console
) -> None:
    client = console.client("acme")
    call = client.interactions.create(
        model="echo", tools=[WEATHER], input='call get_weather {"location": "Paris"}'
    )
    done = client.interactions.create(
        model="echo",
        tools=[WEATHER],
        previous_interaction_id=call.id,
        input=[
            {
                "type": "function_result",
                "call_id": call.steps[0].id,
                "name": "get_weather",
                "result": {"temp_c": 21},
            }
        ],
    )
    sign_in(page, console, "acme")
    page.goto(f"{console.url}/console/interactions/{call.id}")
    expect(page.locator("#status")).to_have_text("requires_action")
    assert step_types(page) == ["user_input", "function_call"]
    function_call = page.locator("#timeline li.step").nth(1)
    expect(function_call).to_contain_text("function_call get_weather")
    expect(function_call).to_contain_text('"location": "Paris"')

    page.get_by_role("link", name=done.id).click()  # the chain, forward
    expect(page).to_have_url(f"{console.url}/console/interactions/{done.id}")
    assert step_types(page) == ["function_result", "model_output"]
    result, answer = page.locator("#timeline li.step").all()
    expect(result).to_contain_text('"temp_c": 21')
    expect(answer).to_contain_text('function_call: get_weather {"location":"Paris"}')
    expect(answer).to_contain_text('function_result: get_weather {"temp_c":21}')
    assert done.usage is not None
    expect(page.locator("[data-usage=total]")).to_have_text(f"{done.usage.total_tokens:,}")
    expect(page.locator("[data-usage=input]")).to_have_text(f"{done.usage.total_input_tokens:,}")
    expect(page.locator("[data-usage=output]")).to_have_text(f"{done.usage.total_output_tokens:,}")
    expect(page.get_by_role("link", name=call.id)).to_be_visible()  # and back


def test_a_running_interaction_tails_live_and_ends(page: Page, console: Console) -> None:
    # echo-idle waits 0.3 s before each 8-character delta: about 6 s for this answer
    running = console.client("acme").interactions.create(
        model="echo-idle", input="a slow answer " * 12, background=True
    )
    sign_in(page, console, "acme")
    page.goto(f"{console.url}/console/interactions/{running.id}")
    # some of the answer is on the page while the run is still going (read in one go)
    page.wait_for_function(
        "() => (document.getElementById('live-steps') || {textContent: ''})"
        ".textContent.includes('slow answer') "
        "&& document.getElementById('status').textContent === 'in_progress'",
        timeout=20_000,
    )
    expect(page.locator("#status")).to_have_text("completed", timeout=30_000)
    expect(page.locator("#live")).to_have_count(0)  # the stored timeline replaced the tail
    assert step_types(page) == ["user_input", "model_output"]
    final = console.client("acme").interactions.get(running.id)
    expect(page.locator("#timeline li.step").nth(1)).to_contain_text(
        final.steps[-1].content[0].text.splitlines()[0]
    )


def test_cancel_from_the_console_ends_a_background_run_cancelled(
    page: Page, console: Console
) -> None:
    running = console.client("acme").interactions.create(
        model="echo-idle", input="cancel me " * 40, background=True
    )
    sign_in(page, console, "acme")
    page.goto(f"{console.url}/console/interactions/{running.id}")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#status")).to_have_text("cancelled", timeout=20_000)
    assert console.client("acme").interactions.get(running.id).status == "cancelled"
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)


def _wait_for_chart(page: Page, series: list[str]) -> None:
    """Wait until Chart.js has drawn `tokens-chart` with these series (its script is deferred,
    and a regrouping redraws it)."""
    page.wait_for_function(
        """(series) => {
            const chart = window.Chart && Chart.getChart('tokens-chart');
            if (!chart) return false;
            const labels = chart.data.datasets.map(d => d.label).sort();
            return JSON.stringify(labels) === JSON.stringify(series);
        }""",
        arg=series,
    )


def test_the_usage_chart_totals_equal_the_interactions_usage(page: Page, console: Console) -> None:
    client = console.client("globex")  # its own tenant: other tests' usage stays out
    made = [
        client.interactions.create(model=model, input=text, labels={"team": team})
        for model, text, team in (
            ("echo", "one two three", "search"),
            ("fast", "four five", "ads"),
            ("echo-slow", "six seven eight nine", "ads"),
        )
    ]
    expected = sum(i.usage.total_tokens for i in made if i.usage)
    sign_in(page, console, "globex")
    page.get_by_role("link", name="Usage and cost").click()
    expect(page.locator("#sum-tokens")).to_have_text(f"{expected:,}")
    _wait_for_chart(page, ["echo", "echo-slow", "fast"])
    chart_total = page.evaluate(
        "() => Chart.getChart('tokens-chart').data.datasets"
        ".flatMap(d => d.data).reduce((a, b) => a + b, 0)"
    )
    assert chart_total == expected
    series = page.evaluate(
        "() => Chart.getChart('tokens-chart').data.datasets.map(d => d.label).sort()"
    )
    assert series == ["echo", "echo-slow", "fast"]  # by model (as sent: an alias is its own)

    page.get_by_label("Group by").select_option("label")
    page.get_by_label("Label key").fill("team")
    page.get_by_role("button", name="Show").click()
    _wait_for_chart(page, ["ads", "search"])
    by_team = page.evaluate(
        "() => Object.fromEntries(Chart.getChart('tokens-chart').data.datasets"
        ".map(d => [d.label, d.data.reduce((a, b) => a + b, 0)]))"
    )
    assert by_team == {
        "search": made[0].usage.total_tokens,
        "ads": made[1].usage.total_tokens + made[2].usage.total_tokens,
    }


def test_a_tenant_key_cannot_see_another_tenants_interaction(page: Page, console: Console) -> None:
    theirs = console.client("acme").interactions.create(model="echo", input="acme's secret")
    sign_in(page, console, "globex")
    assert theirs.id not in row_ids(page)
    page.get_by_label("Id contains").fill(theirs.id)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#results")).to_contain_text("No interactions match")
    answer = page.goto(f"{console.url}/console/interactions/{theirs.id}")  # by direct URL
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("alert")).to_contain_text("not found")
    expect(page.locator("body")).not_to_contain_text("acme's secret")


def test_creating_and_revoking_a_key(page: Page, console: Console) -> None:
    sign_in(page, console, "admin")
    page.get_by_role("link", name="Keys and webhooks").click()
    page.get_by_text("Create a key").click()
    page.get_by_label("Tenant", exact=True).fill("initech")
    page.get_by_label("Name").first.fill("from the console")
    page.get_by_label("Requests per minute").fill("100")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_role("textbox", name="API key").input_value()
    assert secret.startswith("pk-")
    key_id = page.locator("#secret-heading code").first.inner_text()
    expect(page.locator(f"#key-{key_id}")).to_contain_text("initech")
    expect(page.locator(f"#key-{key_id}")).to_contain_text("rpm: 100")

    api = httpx.Client(base_url=console.url, headers={"x-goog-api-key": secret})
    assert api.get("/v1beta/interactions").status_code == 200

    page.reload()  # the secret is shown once: never again
    expect(page.locator("body")).not_to_contain_text(secret)
    page.locator(f"#key-{key_id}").get_by_role("button", name="Revoke").click()
    expect(page.locator(f"#key-{key_id}")).to_contain_text("revoked")
    # refused once the lookup cache (`auth_cache_seconds`, 2 s) lapses
    deadline_ok = False
    for _ in range(100):
        if api.get("/v1beta/interactions").status_code == 401:
            deadline_ok = True
            break
        page.wait_for_timeout(100)
    assert deadline_ok, "the revoked key is still accepted"


def test_a_cross_site_page_cannot_post_to_the_console(page: Page, console: Console) -> None:
    victim = console.client("acme").interactions.create(model="echo", input="do not delete")
    sign_in(page, console, "acme")
    # `localhost` is another site than `127.0.0.1`: a page there posts to the console.
    other = console.url.replace("127.0.0.1", "localhost")
    page.goto(f"{other}/healthz")  # a page of that site (no CSP of the console)
    page.evaluate(
        """async (url) => {
            await fetch(url, {method: 'POST', mode: 'no-cors', credentials: 'include'});
        }""",
        f"{console.url}/console/interactions/{victim.id}/delete",
    )
    assert console.client("acme").interactions.get(victim.id).status == "completed"
    # and the same post from the console's own page deletes (so the one above did reach it)
    page.goto(f"{console.url}/console/interactions/{victim.id}")
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{console.url}/console/interactions")
    assert (
        httpx.get(
            f"{console.url}/v1beta/interactions/{victim.id}",
            headers={"x-goog-api-key": console.keys["acme"]},
        ).status_code
        == 404
    )


def test_running_rows_update_in_place(page: Page, console: Console) -> None:
    running = console.client("acme").interactions.create(
        model="echo-idle", input="row " * 10, background=True
    )
    sign_in(page, console, "acme")
    status = page.locator(f"#row-{running.id} .status")
    expect(status).to_have_text("in_progress")
    expect(status).to_have_text("completed", timeout=30_000)  # no reload: the row polls
    assert console.client("acme").interactions.get(running.id).status == "completed"


def test_the_live_tail_resumes_after_a_dropped_connection(page: Page, console: Console) -> None:
    running = console.client("acme").interactions.create(
        model="echo-idle", input="resume me " * 6, background=True
    )
    asked: list[str | None] = []
    kept: list[str] = []

    def drop_after_six_events(route: Route) -> None:
        asked.append(parse_qs(urlsplit(route.request.url).query).get("last_event_id", [None])[0])
        if len(asked) > 1:
            route.continue_()  # the reconnection reaches the server
            return
        frames = [f for f in route.fetch().text().split("\n\n") if f.startswith("event:")]
        kept.extend(frames[:6])
        # the first connection ends after six events, as a dropped one would
        route.fulfill(
            status=200,
            headers={"content-type": "text/event-stream"},
            body="\n\n".join(kept) + "\n\n",
        )

    page.route(re.compile(r"/console/interactions/[^/]+/events"), drop_after_six_events)
    sign_in(page, console, "acme")
    page.goto(f"{console.url}/console/interactions/{running.id}")
    expect(page.locator("#status")).to_have_text("completed", timeout=30_000)
    last_kept = re.search(r"^id: (\S+)$", kept[-1], re.MULTILINE)
    assert last_kept is not None
    assert asked == [None, last_kept.group(1)]  # EventSource resumed after the sixth event
    final = console.client("acme").interactions.get(running.id)
    expect(page.locator("#timeline li.step").nth(1)).to_contain_text(
        final.steps[-1].content[0].text.splitlines()[0]
    )
