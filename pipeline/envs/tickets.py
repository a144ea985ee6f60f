"""Tickets: a support ticket queue behind a login (BFCL ``TicketAPI``)."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class TicketsState(EnvState):
    """TODO: the state of the tickets environment."""


class Tickets(Environment[TicketsState]):
    name = "tickets"
    state_model = TicketsState
    bfcl_class = "TicketAPI"
