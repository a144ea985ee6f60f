"""Messaging (BFCL ``MessageAPI``): users, login, sending and deleting, seeded ids."""

from __future__ import annotations

from typing import Any

import pytest
from envcheck import refusal

from pipeline.envs import ToolError
from pipeline.envs.messaging import Messaging


def env(**state: Any) -> Messaging:
    built = Messaging.from_state({"current_user": "USR001", **state})
    assert isinstance(built, Messaging)
    return built


def test_defaults_match_upstream() -> None:
    assert Messaging.from_state().bfcl_state() == {
        "generated_ids": [],
        "user_count": 4,
        "user_map": {"Alice": "USR001", "Bob": "USR002", "Catherine": "USR003", "Daniel": "USR004"},
        "inbox": [
            {"USR002": "My name is Alice. I want to connect."},
            {"USR003": "Could you upload the file?"},
            {"USR004": "Could you upload the file?"},
        ],
        "message_count": 3,
        "current_user": None,
    }


def test_send_view_and_delete() -> None:
    messaging = env(inbox=[{"USR003": ["Earlier note"]}], message_count=1)
    sent = messaging.invoke("send_message", {"receiver_id": "USR003", "message": "Hi Catherine"})
    # seed 200191 draws 67410 first, as upstream
    assert sent == {
        "sent_status": True,
        "message_id": 67410,
        "message": "Message sent to 'USR003' successfully.",
    }
    assert messaging.invoke("view_messages_sent", {}) == {
        "messages": {"USR003": [["Earlier note"], "Hi Catherine"]}
    }
    assert messaging.state.message_count == 2
    assert messaging.invoke("delete_message", {"receiver_id": "USR003"}) == {
        "deleted_status": True,
        "receiver_id": "USR003",
        "message": "Receiver USR003's latest message deleted successfully.",
    }
    assert messaging.bfcl_state()["inbox"] == [{"USR003": ["Earlier note"]}]
    assert messaging.state.message_count == 2 and messaging.state.generated_ids == [67410]


def test_records_with_several_keys_count_as_their_first_receiver() -> None:
    inbox = [{"USR001": ["a"], "USR003": ["b"]}, {"USR003": "c"}]
    messaging = env(inbox=inbox)
    assert messaging.invoke("view_messages_sent", {}) == {
        "messages": {"USR001": [["a"]], "USR003": ["c"]}
    }
    assert messaging.invoke("search_messages", {"keyword": "C"}) == {
        "results": [{"receiver_id": "USR003", "message": "c"}]
    }


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("send_message", {"receiver_id": "USR999", "message": "hi"}, "no user has the id"),
        ("send_message", {"receiver_id": "USR002", "message": "  "}, "must not be empty"),
        ("send_message", {"receiver_id": "USR002", "message": "x" * 20_000}, "longer than"),
        ("delete_message", {"receiver_id": "USR001"}, "no message was sent"),
        ("message_login", {"user_id": "'; DROP TABLE users"}, "no user has the id"),
        ("get_user_id", {"user": "Zed"}, "no user is called"),
        ("add_contact", {"user_name": "Alice"}, "already exists"),
        ("search_messages", {"keyword": ""}, "must not be empty"),
    ],
)
def test_misuse_raises_and_changes_nothing(
    tool: str, arguments: dict[str, Any], message: str
) -> None:
    refusal(env(), tool, arguments, message)


def test_login_is_required_for_message_tools() -> None:
    messaging = Messaging.from_state()
    for tool, arguments in [
        ("send_message", {"receiver_id": "USR002", "message": "hi"}),
        ("view_messages_sent", {}),
        ("delete_message", {"receiver_id": "USR002"}),
        ("get_message_stats", {}),
    ]:
        with pytest.raises(ToolError, match="no user is logged in"):
            messaging.invoke(tool, arguments)
    assert messaging.invoke("message_get_login_status", {}) == {"login_status": False}
    assert messaging.invoke("message_login", {"user_id": "USR002"}) == {
        "login_status": True,
        "message": "User 'USR002' logged in successfully.",
    }
    assert messaging.invoke("message_get_login_status", {}) == {"login_status": True}
    assert messaging.invoke("get_message_stats", {}) == {
        "stats": {"received_count": 1, "total_contacts": 2}
    }


def test_add_contact_takes_the_next_free_id() -> None:
    messaging = env()
    assert messaging.invoke("add_contact", {"user_name": "John Levy"}) == {
        "added_status": True,
        "user_id": "USR005",
        "message": "Contact 'John Levy' added successfully.",
    }
    assert messaging.state.user_count == 5
    clashing = env(user_count=4, user_map={"Michael": "USR005", "Sarah": "USR006"})
    assert clashing.invoke("add_contact", {"user_name": "Kim"})["user_id"] == "USR007"  # type: ignore[index,call-overload]
    assert clashing.invoke("list_users", {}) == {"user_list": ["Michael", "Sarah", "Kim"]}
    assert clashing.invoke("get_user_id", {"user": "Kim"}) == {"user_id": "USR007"}


def test_ids_are_seeded_unique_and_resume_from_a_snapshot() -> None:
    straight = env()
    ids = [
        straight.invoke("send_message", {"receiver_id": "USR002", "message": f"m{n}"})[
            "message_id"  # type: ignore[index,call-overload]
        ]
        for n in range(3)
    ]
    assert ids[0] == 67410 and len(set(ids)) == 3
    assert straight.state.generated_ids == ids
    first = env()
    first.invoke("send_message", {"receiver_id": "USR002", "message": "m0"})
    resumed = Messaging.from_state(first.snapshot())
    for n in (1, 2):
        resumed.invoke("send_message", {"receiver_id": "USR002", "message": f"m{n}"})
    assert resumed.snapshot() == straight.snapshot()
    reseeded = env(random_seed=1)
    reseeded.invoke("send_message", {"receiver_id": "USR002", "message": "m0"})
    assert reseeded.state.generated_ids != [67410]


def test_an_id_already_generated_is_drawn_again() -> None:
    messaging = env(generated_ids=[67410])
    result = messaging.invoke("send_message", {"receiver_id": "USR002", "message": "hello"})
    assert result["message_id"] != 67410  # type: ignore[index,call-overload]
    assert messaging.state.generated_ids[0] == 67410 and len(messaging.state.generated_ids) == 2


def test_upstream_configs_load() -> None:
    config = {
        "user_count": 4,
        "user_map": {"Ethan": "USR005", "Sophia": "USR006"},
        "inbox": [{"USR006": {"USR005": ["Interested in Quasar Ltd stocks."]}}],
        "message_count": 1,
        "current_user": "USR005",
    }
    messaging = Messaging.from_bfcl_config(config)
    assert {key: messaging.bfcl_state()[key] for key in config} == config
    assert messaging.invoke("view_messages_sent", {}) == {
        "messages": {"USR006": [{"USR005": ["Interested in Quasar Ltd stocks."]}]}
    }


def test_tool_set() -> None:
    specs = Messaging.tool_specs()
    assert len(specs) == 10
    assert specs["send_message"].param_names == ("receiver_id", "message")
