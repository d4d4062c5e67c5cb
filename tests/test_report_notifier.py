"""The seam for notifications: resolving a report tells its reporter through
``ReportDesk.notifier`` (node.moderation.reports.ReportNotifier). The node itself, through
its whole app and real HTTP handlers; only the notifier is the test's own."""

from __future__ import annotations

from pathlib import Path

import httpx

from node.config import parse_config
from node.moderation.reports import ReportDesk
from node.notifications import Notifier
from node.web.app import create_app

PASSWORD = "correct horse battery"


class Recorder:
    def __init__(self) -> None:
        self.told: list[tuple[int, int]] = []

    def report_handled(self, account_id: int, report_id: int) -> None:
        self.told.append((account_id, report_id))


class Broken:
    def report_handled(self, account_id: int, report_id: int) -> None:
        raise RuntimeError("the notification store is down")


async def _token(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    body = {"username": username, "password": PASSWORD}
    answer = await client.post("/api/v1/sessions", json=body)
    assert answer.status_code == 200, answer.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def test_resolving_a_report_tells_its_reporter_and_a_failing_notifier_changes_nothing(
    tmp_path: Path,
) -> None:
    config = parse_config(
        {
            "node": {"base_url": "http://127.0.0.1:1", "data_dir": str(tmp_path)},
            "accounts": {"auth_rate_per_minute": 1000},
            "federation": {"allow_private_addresses": True},
        }
    )
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=config.node.base_url) as client,
    ):
        state = app.state
        desk: ReportDesk = state.reports
        # The node wires its notifications in: the reporter hears of it (issue 13).
        assert isinstance(desk.notifier, Notifier)
        accounts = state.accounts
        accounts.create("root", PASSWORD, is_admin=True)
        dave = accounts.create("dave", PASSWORD)
        accounts.create("eve", PASSWORD)
        root_auth, dave_auth = await _token(client, "root"), await _token(client, "dave")

        node_notifier = desk.notifier
        recorder = Recorder()
        desk.notifier = recorder
        filed = []
        for comment in ("first", "second"):
            answer = await client.post(
                "/api/v1/reports",
                json={"target": "account", "account": "eve", "comment": comment},
                headers=dave_auth,
            )
            assert answer.status_code == 201, answer.text
            filed.append(answer.json()["id"])
        resolved = await client.post(
            f"/api/v1/admin/reports/{filed[0]}/resolve", json={}, headers=root_auth
        )
        assert resolved.status_code == 200, resolved.text
        assert recorder.told == [(dave.id, filed[0])]

        # With the node's own notifier, dave's notifications list "your report was handled".
        desk.notifier = node_notifier
        again = await client.post(
            "/api/v1/reports",
            json={"target": "account", "account": "eve", "comment": "third"},
            headers=dave_auth,
        )
        assert again.status_code == 201, again.text
        resolved = await client.post(
            f"/api/v1/admin/reports/{again.json()['id']}/resolve", json={}, headers=root_auth
        )
        assert resolved.status_code == 200, resolved.text
        listed = (await client.get("/api/v1/notifications", headers=dave_auth)).json()
        handled = [n for n in listed["notifications"] if n["kind"] == "report_handled"]
        assert len(handled) == 1, listed

        desk.notifier = Broken()
        resolved = await client.post(
            f"/api/v1/admin/reports/{filed[1]}/resolve",
            json={"action": "silence"},
            headers=root_auth,
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["state"] == "resolved"
        assert resolved.json()["action_taken"] == "silenced eve"
