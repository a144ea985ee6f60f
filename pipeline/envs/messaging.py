"""Messaging: users, login and an inbox of sent messages (BFCL ``MessageAPI``)."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class MessagingState(EnvState):
    """TODO: the state of the messaging environment."""


class Messaging(Environment[MessagingState]):
    name = "messaging"
    state_model = MessagingState
    bfcl_class = "MessageAPI"
