"""Messaging: users, login and an inbox of sent messages (BFCL ``MessageAPI``).

The state mirrors upstream's public attributes. ``inbox`` is a list of one-key records
``{receiver_id: message}`` in sending order (there is no sender field: the inbox is the log of
messages sent from this workspace). BFCL configs put lists, nested records or several keys
into some records; they are kept as they are, and a record counts as one message addressed to
its first key, which is how upstream's views read them. ``generated_ids`` (a set upstream) is a
list here, in drawing order. ``message_count`` counts messages ever sent: deleting a message
does not lower it, and ids are never reused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from pydantic import Field, JsonValue

from pipeline.envs.base import Environment, SeededState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

# Latency (seconds), modelled on a chat service's REST API: the session check is local (0.05);
# user directory and inbox reads are single indexed look-ups (0.3); search scans the inbox
# (0.5); login checks the user (0.6); adding a contact and deleting a message are writes (0.7);
# sending goes through delivery to the receiver (0.9).
_LOCAL = 0.05
_READ = 0.3
_SEARCH = 0.5
_LOGIN = 0.6
_WRITE = 0.7
_SEND = 0.9

_MAX_MESSAGE = 10_000
_MAX_NAME = 200


def _default_user_map() -> dict[str, str]:
    return {"Alice": "USR001", "Bob": "USR002", "Catherine": "USR003", "Daniel": "USR004"}


def _default_inbox() -> list[dict[str, JsonValue]]:
    return [
        {"USR002": "My name is Alice. I want to connect."},
        {"USR003": "Could you upload the file?"},
        {"USR004": "Could you upload the file?"},
    ]


class MessagingState(SeededState):
    generated_ids: list[int] = Field(default_factory=list)
    user_count: int = 4
    user_map: dict[str, str] = Field(default_factory=_default_user_map)
    inbox: list[dict[str, JsonValue]] = Field(default_factory=_default_inbox)
    message_count: int = 3
    current_user: str | None = None
    random_seed: int = 200191


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _receiver(record: dict[str, JsonValue]) -> str | None:
    """The user a stored message was sent to: the record's first key."""
    return next(iter(record), None)


def _texts(value: JsonValue) -> Iterator[str]:
    """Every string inside a stored message (configs nest lists and records)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif value is not None:
        yield json.dumps(value)


class Messaging(Environment[MessagingState]):
    name = "messaging"
    state_model = MessagingState
    bfcl_class = "MessageAPI"

    # ----- helpers --------------------------------------------------------------------
    def _require_login(self) -> str:
        if self.state.current_user is None:
            raise ToolError("no user is logged in to the messaging app; log in first")
        return self.state.current_user

    def _require_known_user_id(self, user_id: str) -> None:
        if user_id not in self.state.user_map.values():
            raise ToolError(f"no user has the id {_shown(user_id)!r}")

    def _new_message_id(self) -> int:
        taken = set(self.state.generated_ids)
        message_id = self.rng.randint(10000, 99999)
        while message_id in taken:
            message_id = self.rng.randint(10000, 99999)
        self.state.generated_ids.append(message_id)
        return message_id

    # ----- users and session ----------------------------------------------------------
    @tool(
        ToolKind.WRITE,
        _LOGIN,
        returns={"login_status": Sem.STATUS, "message": Sem.MESSAGE},
    )
    def message_login(self, user_id: Annotated[str, Sem.USER_ID]) -> dict[str, JsonValue]:
        """Log in to the messaging app as the user with the given id.

        Args:
            user_id: Id of the user to log in as.
        """
        self._require_known_user_id(user_id)
        self.state.current_user = user_id
        return {"login_status": True, "message": f"User '{user_id}' logged in successfully."}

    @tool(ToolKind.READ, _LOCAL, returns={"login_status": Sem.STATUS})
    def message_get_login_status(self) -> dict[str, JsonValue]:
        """Tell whether a user is logged in to the messaging app."""
        return {"login_status": self.state.current_user is not None}

    @tool(ToolKind.READ, _READ, returns={"user_list.*": Sem.PERSON_NAME})
    def list_users(self) -> dict[str, JsonValue]:
        """List the names of all users in the workspace."""
        return {"user_list": list(self.state.user_map)}

    @tool(ToolKind.READ, _READ, returns={"user_id": Sem.USER_ID})
    def get_user_id(self, user: Annotated[str, Sem.PERSON_NAME]) -> dict[str, JsonValue]:
        """Get the id of a user from their name.

        Args:
            user: The user's name.
        """
        user_id = self.state.user_map.get(user)
        if user_id is None:
            raise ToolError(f"no user is called {_shown(user)!r}")
        return {"user_id": user_id}

    @tool(
        ToolKind.WRITE,
        _WRITE,
        returns={"added_status": Sem.STATUS, "user_id": Sem.USER_ID, "message": Sem.MESSAGE},
    )
    def add_contact(self, user_name: Annotated[str, Sem.PERSON_NAME]) -> dict[str, JsonValue]:
        """Add a new user to the workspace; they get the next free id of the form USRnnn.

        Args:
            user_name: Name of the user to add.
        """
        if not user_name.strip():
            raise ToolError("user_name must not be empty")
        if len(user_name) > _MAX_NAME:
            raise ToolError(f"user_name is longer than {_MAX_NAME} characters")
        if user_name in self.state.user_map:
            raise ToolError(f"a user called {_shown(user_name)!r} already exists")
        taken = set(self.state.user_map.values())
        number = self.state.user_count + 1
        while f"USR{number:03d}" in taken:
            number += 1
        user_id = f"USR{number:03d}"
        self.state.user_count = number
        self.state.user_map[user_name] = user_id
        return {
            "added_status": True,
            "user_id": user_id,
            "message": f"Contact '{user_name}' added successfully.",
        }

    # ----- messages -------------------------------------------------------------------
    @tool(
        ToolKind.WRITE,
        _SEND,
        returns={
            "sent_status": Sem.STATUS,
            "message_id": Sem.MESSAGE_ID,
            "message": Sem.MESSAGE,
        },
    )
    def send_message(
        self, receiver_id: Annotated[str, Sem.USER_ID], message: Annotated[str, Sem.TEXT]
    ) -> dict[str, JsonValue]:
        """Send a message from the logged-in user to another user.

        Args:
            receiver_id: Id of the user to send the message to.
            message: The message text.
        """
        self._require_login()
        self._require_known_user_id(receiver_id)
        if not message.strip():
            raise ToolError("message must not be empty")
        if len(message) > _MAX_MESSAGE:
            raise ToolError(f"message is longer than {_MAX_MESSAGE} characters")
        message_id = self._new_message_id()
        self.state.inbox.append({receiver_id: message})
        self.state.message_count += 1
        return {
            "sent_status": True,
            "message_id": message_id,
            "message": f"Message sent to '{receiver_id}' successfully.",
        }

    @tool(
        ToolKind.WRITE,
        _WRITE,
        returns={
            "deleted_status": Sem.STATUS,
            "receiver_id": Sem.USER_ID,
            "message": Sem.MESSAGE,
        },
    )
    def delete_message(self, receiver_id: Annotated[str, Sem.USER_ID]) -> dict[str, JsonValue]:
        """Delete the latest message sent to a user.

        Args:
            receiver_id: Id of the user whose latest received message is deleted.
        """
        self._require_login()
        for index in range(len(self.state.inbox) - 1, -1, -1):
            if _receiver(self.state.inbox[index]) == receiver_id:
                del self.state.inbox[index]
                return {
                    "deleted_status": True,
                    "receiver_id": receiver_id,
                    "message": f"Receiver {receiver_id}'s latest message deleted successfully.",
                }
        raise ToolError(f"no message was sent to {_shown(receiver_id)!r}")

    # a stored message is text, or (from BFCL configs) a list or record nesting its text
    @tool(
        ToolKind.READ,
        _READ,
        returns={
            "messages.*.*": Sem.TEXT,
            "messages.*.*.*": Sem.TEXT,
            "messages.*.*.*.*": Sem.TEXT,
            "messages.*.*.*.*.*": Sem.TEXT,
        },
    )
    def view_messages_sent(self) -> dict[str, JsonValue]:
        """Show all messages sent, grouped by receiver id in sending order."""
        self._require_login()
        grouped: dict[str, list[JsonValue]] = {}
        for record in self.state.inbox:
            receiver = _receiver(record)
            if receiver is not None:
                grouped.setdefault(receiver, []).append(record[receiver])
        messages: dict[str, JsonValue] = dict(grouped.items())
        return {"messages": messages}

    @tool(
        ToolKind.READ,
        _SEARCH,
        returns={
            "results.*.receiver_id": Sem.USER_ID,
            "results.*.message": Sem.TEXT,
            "results.*.message.*": Sem.TEXT,
            "results.*.message.*.*": Sem.TEXT,
            "results.*.message.*.*.*": Sem.TEXT,
        },
    )
    def search_messages(self, keyword: Annotated[str, Sem.KEYWORD]) -> dict[str, JsonValue]:
        """Find sent messages that contain a keyword (case-insensitive).

        Args:
            keyword: The text to look for.
        """
        self._require_login()
        needle = keyword.strip().lower()
        if not needle:
            raise ToolError("keyword must not be empty")
        results: list[JsonValue] = []
        for record in self.state.inbox:
            receiver = _receiver(record)
            if receiver is None:
                continue
            content = record[receiver]
            if any(needle in text.lower() for text in _texts(content)):
                results.append({"receiver_id": receiver, "message": content})
        return {"results": results}

    @tool(
        ToolKind.READ,
        _READ,
        returns={"stats.received_count": Sem.COUNT, "stats.total_contacts": Sem.COUNT},
    )
    def get_message_stats(self) -> dict[str, JsonValue]:
        """Count the messages the logged-in user received and the users messages went to."""
        current = self._require_login()
        receivers = [_receiver(record) for record in self.state.inbox]
        received = sum(1 for receiver in receivers if receiver == current)
        contacts = {r for r in receivers if r is not None and r != current}
        return {"stats": {"received_count": received, "total_contacts": len(contacts)}}
