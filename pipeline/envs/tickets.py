"""Tickets: a support ticket queue behind a login (BFCL ``TicketAPI``).

Latencies: every tool is one authenticated call to a hosted helpdesk service. Reading a ticket
or the login status is a single indexed look-up (~0.4–0.6 s); creating, editing, closing or
resolving writes to the queue and notifies watchers (~0.9–1.2 s); logging in checks
credentials against an identity provider (~1.0 s), logging out only drops the session (~0.4 s).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, JsonValue
from typing_extensions import TypedDict

from pipeline.envs.base import Environment, EnvState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

_STATUS_READ = 0.4
_READ = 0.6
_LOGIN = 1.0
_LOGOUT = 0.4
_WRITE = 0.9
_CREATE = 1.2

MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
MAX_RESOLUTION = 10_000
MAX_CREDENTIAL = 256

#: a ticket id as stored upstream: normally an integer, but imported queues also use strings
TicketId = int | str

#: fields of a ticket: ours, plus the ones found in upstream's queues
_TICKET_FIELDS: dict[str, Sem] = {
    "id": Sem.TICKET_ID,
    "title": Sem.TITLE,
    "subject": Sem.TITLE,
    "issue": Sem.TITLE,
    "description": Sem.TEXT,
    "resolution": Sem.TEXT,
    "status": Sem.STATUS,
    "priority": Sem.PRIORITY,
    "created_by": Sem.USER_NAME,
    "created_at": Sem.DATE,
    "user_id": Sem.USER_ID,
    "booking_id": Sem.BOOKING_ID,
}


def _ticket_types(prefix: str) -> dict[str, Sem]:
    """Result types of a ticket at ``prefix`` (a dotted path, "" for the whole result).

    Upstream queues are free-form: a ticket may nest another ticket-like record under a key
    (``"ticket_001": {"title": ...}``), and keys we do not know are field values whose meaning
    depends on the key."""
    lead = f"{prefix}." if prefix else ""
    types = {f"{lead}{key}": sem for key, sem in _TICKET_FIELDS.items()}
    types.update({f"{lead}*.{key}": sem for key, sem in _TICKET_FIELDS.items()})
    types[f"{lead}*"] = Sem.FIELD_VALUE
    types[f"{lead}*.*"] = Sem.FIELD_VALUE
    return types


class TicketUpdates(TypedDict, total=False):
    """Fields of a ticket that can be changed; omitted fields stay as they are."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    title: Annotated[str, Field(description="New title.")]
    description: Annotated[str, Field(description="New description.")]
    status: Annotated[str, Field(description='New status, e.g. "Open", "In Progress".')]
    priority: Annotated[int, Field(description="New priority from 1 (lowest) to 5 (highest).")]


class TicketsState(EnvState):
    """The ticket queue, the next id to hand out and the logged-in user.

    Tickets are free-form records (upstream queues mix shapes), normally with ``id``, ``title``,
    ``description``, ``status``, ``priority`` and ``created_by``.
    """

    ticket_queue: list[dict[str, JsonValue]] = Field(default_factory=list)
    ticket_counter: int = 1
    current_user: str | None = None


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _text(value: str, name: str, limit: int, allow_empty: bool = False) -> str:
    if not allow_empty and not value.strip():
        raise ToolError(f"{name} must not be empty")
    if len(value) > limit:
        raise ToolError(f"{name} is too long (at most {limit} characters)")
    return value


def _priority(value: int) -> int:
    if not 1 <= value <= 5:
        raise ToolError("priority must be between 1 and 5")
    return value


def _status_is(ticket: dict[str, JsonValue], status: str) -> bool:
    value = ticket.get("status")
    return isinstance(value, str) and value.lower() == status.lower()


class Tickets(Environment[TicketsState]):
    name = "tickets"
    state_model = TicketsState
    bfcl_class = "TicketAPI"
    internal_fields: ClassVar[frozenset[str]] = frozenset()

    def _find(self, ticket_id: TicketId) -> dict[str, JsonValue]:
        for ticket in self.state.ticket_queue:
            found = ticket.get("id")
            # bool is an int in Python; an id of True must not match ticket 1
            if found == ticket_id and type(found) is type(ticket_id):
                return ticket
        raise ToolError(f"ticket {_show(ticket_id)} not found")

    def _require_login(self, action: str) -> str:
        if self.state.current_user is None:
            raise ToolError(f"log in to {action}")
        return self.state.current_user

    # ----- session -----------------------------------------------------------------------
    @tool(ToolKind.WRITE, _LOGIN, returns={"success": Sem.FLAG})
    def ticket_login(
        self, username: Annotated[str, Sem.USER_NAME], password: Annotated[str, Sem.CREDENTIAL]
    ) -> dict[str, JsonValue]:
        """Log a user in to the ticket system.

        Args:
            username: The user's name.
            password: The user's password.
        """
        _text(username, "username", MAX_CREDENTIAL)
        _text(password, "password", MAX_CREDENTIAL)
        self.state.current_user = username
        return {"success": True}

    @tool(ToolKind.READ, _STATUS_READ, returns={"login_status": Sem.FLAG})
    def ticket_get_login_status(self) -> dict[str, JsonValue]:
        """Say whether a user is logged in to the ticket system."""
        return {"login_status": self.state.current_user is not None}

    @tool(ToolKind.WRITE, _LOGOUT, returns={"success": Sem.FLAG}, ends_session=True)
    def logout(self) -> dict[str, JsonValue]:
        """Log the current user out of the ticket system."""
        if self.state.current_user is None:
            raise ToolError("no user is logged in")
        self.state.current_user = None
        return {"success": True}

    # ----- tickets -----------------------------------------------------------------------
    @tool(ToolKind.WRITE, _CREATE, returns=_ticket_types(""))
    def create_ticket(
        self,
        title: Annotated[str, Sem.TITLE],
        description: Annotated[str, Sem.TEXT] = "",
        priority: Annotated[int, Sem.PRIORITY] = 1,
    ) -> dict[str, JsonValue]:
        """Open a new ticket in the queue under the logged-in user.

        Args:
            title: Short title of the ticket.
            description: What the issue is about. Defaults to an empty string.
            priority: Priority from 1 (lowest) to 5 (highest). Defaults to 1.
        """
        user = self._require_login("create a ticket")
        _text(title, "title", MAX_TITLE)
        _text(description, "description", MAX_DESCRIPTION, allow_empty=True)
        _priority(priority)
        used = {ticket.get("id") for ticket in self.state.ticket_queue}
        ticket_id = self.state.ticket_counter
        while ticket_id in used:
            ticket_id += 1
        ticket: dict[str, JsonValue] = {
            "id": ticket_id,
            "title": title,
            "description": description,
            "status": "Open",
            "priority": priority,
            "created_by": user,
        }
        self.state.ticket_queue.append(ticket)
        self.state.ticket_counter = ticket_id + 1
        return dict(ticket)

    @tool(ToolKind.READ, _READ, returns=_ticket_types(""))
    def get_ticket(self, ticket_id: Annotated[TicketId, Sem.TICKET_ID]) -> dict[str, JsonValue]:
        """Fetch one ticket by its id.

        Args:
            ticket_id: Id of the ticket.
        """
        return dict(self._find(ticket_id))

    @tool(ToolKind.READ, _READ, returns=_ticket_types("*"))
    def get_user_tickets(self, status: Annotated[str | None, Sem.STATUS] = None) -> list[JsonValue]:
        """List the tickets the logged-in user created, optionally only those with a status.

        Args:
            status: Only return tickets with this status (case-insensitive); all when omitted.
        """
        user = self._require_login("list your tickets")
        return [
            dict(ticket)
            for ticket in self.state.ticket_queue
            if ticket.get("created_by") == user and (status is None or _status_is(ticket, status))
        ]

    @tool(ToolKind.WRITE, _WRITE, returns={"status": Sem.MESSAGE})
    def close_ticket(self, ticket_id: Annotated[TicketId, Sem.TICKET_ID]) -> dict[str, JsonValue]:
        """Close a ticket.

        Args:
            ticket_id: Id of the ticket to close.
        """
        ticket = self._find(ticket_id)
        if _status_is(ticket, "Closed"):
            raise ToolError(f"ticket {_show(ticket_id)} is already closed")
        ticket["status"] = "Closed"
        return {"status": f"Ticket {ticket_id} has been closed successfully."}

    @tool(ToolKind.WRITE, _WRITE, returns={"status": Sem.MESSAGE})
    def resolve_ticket(
        self,
        ticket_id: Annotated[TicketId, Sem.TICKET_ID],
        resolution: Annotated[str, Sem.TEXT],
    ) -> dict[str, JsonValue]:
        """Mark a ticket as resolved and record how it was resolved.

        Args:
            ticket_id: Id of the ticket to resolve.
            resolution: How the issue was resolved.
        """
        ticket = self._find(ticket_id)
        _text(resolution, "resolution", MAX_RESOLUTION, allow_empty=True)
        for final in ("Closed", "Resolved"):
            if _status_is(ticket, final):
                raise ToolError(f"ticket {_show(ticket_id)} is already {final.lower()}")
        ticket["status"] = "Resolved"
        ticket["resolution"] = resolution
        return {"status": f"Ticket {ticket_id} has been resolved successfully."}

    @tool(ToolKind.WRITE, _WRITE, returns={"status": Sem.MESSAGE})
    def edit_ticket(
        self,
        ticket_id: Annotated[TicketId, Sem.TICKET_ID],
        updates: Annotated[TicketUpdates, Sem.RECORD],
    ) -> dict[str, JsonValue]:
        """Change some fields of a ticket: its title, description, status or priority.

        Args:
            ticket_id: Id of the ticket to change.
            updates: The fields to change and their new values; other fields stay as they are.
        """
        ticket = self._find(ticket_id)
        if not updates:
            raise ToolError("updates must name at least one field to change")
        changes: dict[str, JsonValue] = {}
        if "title" in updates:
            changes["title"] = _text(updates["title"], "title", MAX_TITLE)
        if "description" in updates:
            changes["description"] = _text(
                updates["description"], "description", MAX_DESCRIPTION, allow_empty=True
            )
        if "status" in updates:
            changes["status"] = _text(updates["status"], "status", MAX_TITLE)
        if "priority" in updates:
            changes["priority"] = _priority(updates["priority"])
        ticket.update(changes)
        return {"status": f"Ticket {ticket_id} has been updated successfully."}
