"""The tickets environment (BFCL ``TicketAPI``): behaviour, errors, ids, schema."""

from __future__ import annotations

from typing import Any

from envcheck import refusal

from pipeline.envs.tickets import Tickets


def make(**state: Any) -> Tickets:
    env = Tickets.from_state(state)
    assert isinstance(env, Tickets)
    return env


def test_defaults_match_upstream() -> None:
    assert make().bfcl_state() == {"ticket_queue": [], "ticket_counter": 1, "current_user": None}


def test_upstream_free_form_queues_are_accepted() -> None:
    env = Tickets.from_bfcl_config(
        {
            "ticket_queue": [
                {"ticket_001": {"title": "Odd shape", "status": "open"}},
                {"id": "ticket_002", "issue": "string id", "status": "Open"},
            ]
        }
    )
    assert env.invoke("close_ticket", {"ticket_id": "ticket_002"}) == {
        "status": "Ticket ticket_002 has been closed successfully."
    }
    assert env.state.ticket_queue[1]["status"] == "Closed"


def test_login_status_and_logout() -> None:
    env = make()
    assert env.invoke("ticket_get_login_status", {}) == {"login_status": False}
    refusal(env, "logout", {}, "no user")
    refusal(env, "ticket_login", {"username": "", "password": "x"}, "username")
    assert env.invoke("ticket_login", {"username": "ana", "password": "pw"}) == {"success": True}
    assert env.state.current_user == "ana"
    assert env.invoke("ticket_get_login_status", {}) == {"login_status": True}
    assert env.invoke("logout", {}) == {"success": True}
    assert env.state.current_user is None


def test_create_needs_login_and_uses_counter() -> None:
    env = make(ticket_counter=7)
    refusal(env, "create_ticket", {"title": "Broken"}, "log in")
    env.invoke("ticket_login", {"username": "ana", "password": "pw"})
    first = env.invoke("create_ticket", {"title": "Broken chair", "priority": 3})
    assert first == {
        "id": 7,
        "title": "Broken chair",
        "description": "",
        "status": "Open",
        "priority": 3,
        "created_by": "ana",
    }
    second = env.invoke("create_ticket", {"title": "Loud fan"})
    assert isinstance(second, dict) and second["id"] == 8 and second["priority"] == 1
    assert env.state.ticket_counter == 9
    refusal(env, "create_ticket", {"title": "x", "priority": 6}, "priority")
    refusal(env, "create_ticket", {"title": "  "}, "title")
    refusal(env, "create_ticket", {"title": "t" * 100_000}, "too long")


def test_counter_skips_ids_in_use() -> None:
    env = make(current_user="ana", ticket_counter=3, ticket_queue=[{"id": 3, "title": "old"}])
    created = env.invoke("create_ticket", {"title": "new"})
    assert isinstance(created, dict) and created["id"] == 4
    assert env.state.ticket_counter == 5


def test_ids_continue_after_snapshot() -> None:
    env = make(current_user="ana", ticket_counter=50)
    env.invoke("create_ticket", {"title": "one"})
    resumed = Tickets.from_state(env.snapshot())
    assert resumed.invoke("create_ticket", {"title": "two"}) == env.invoke(
        "create_ticket", {"title": "two"}
    )
    assert env.state.ticket_queue[-1]["id"] == 51


def test_get_close_resolve_edit() -> None:
    queue = [
        {
            "id": 10,
            "title": "A",
            "description": "d",
            "status": "Open",
            "priority": 2,
            "created_by": "bo",
        }
    ]
    env = make(ticket_queue=queue)
    assert env.invoke("get_ticket", {"ticket_id": 10}) == queue[0]
    refusal(env, "get_ticket", {"ticket_id": 11}, "not found")
    refusal(env, "get_ticket", {"ticket_id": True}, "ticket_id")
    edit = {"ticket_id": 10, "updates": {"priority": 5, "status": "Urgent"}}
    assert env.invoke("edit_ticket", edit) == {"status": "Ticket 10 has been updated successfully."}
    assert env.state.ticket_queue[0]["priority"] == 5
    assert env.state.ticket_queue[0]["status"] == "Urgent"
    refusal(env, "edit_ticket", {"ticket_id": 10, "updates": {}}, "at least one")
    refusal(env, "edit_ticket", {"ticket_id": 10, "updates": {"owner": "me"}}, "owner")
    refusal(
        env, "edit_ticket", {"ticket_id": 10, "updates": {"title": "ok", "priority": 0}}, "priority"
    )
    assert env.invoke("resolve_ticket", {"ticket_id": 10, "resolution": "Fixed."}) == {
        "status": "Ticket 10 has been resolved successfully."
    }
    assert env.state.ticket_queue[0]["resolution"] == "Fixed."
    refusal(env, "resolve_ticket", {"ticket_id": 10, "resolution": "again"}, "already resolved")
    assert env.invoke("close_ticket", {"ticket_id": 10}) == {
        "status": "Ticket 10 has been closed successfully."
    }
    refusal(env, "close_ticket", {"ticket_id": 10}, "already closed")


def test_user_tickets_filter() -> None:
    queue = [
        {"id": 1, "title": "a", "status": "Open", "created_by": "ana"},
        {"id": 2, "title": "b", "status": "Closed", "created_by": "ana"},
        {"id": 3, "title": "c", "status": "Open", "created_by": "bo"},
    ]
    env = make(ticket_queue=queue)
    refusal(env, "get_user_tickets", {}, "log in")
    env.invoke("ticket_login", {"username": "ana", "password": "pw"})
    assert env.invoke("get_user_tickets", {}) == queue[:2]
    assert env.invoke("get_user_tickets", {"status": "open"}) == [queue[0]]


def test_tool_set_and_the_closed_updates_schema() -> None:
    specs = Tickets.tool_specs()
    assert len(specs) == 9
    updates = specs["edit_ticket"].parameters["$defs"]["TicketUpdates"]
    assert set(updates["properties"]) == {"title", "description", "status", "priority"}
    assert updates["additionalProperties"] is False
