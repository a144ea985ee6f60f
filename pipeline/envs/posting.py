"""Social posting: posts, comments, retweets and follows (BFCL ``TwitterAPI``)."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class PostingState(EnvState):
    """TODO: the state of the posting environment."""


class Posting(Environment[PostingState]):
    name = "posting"
    state_model = PostingState
    bfcl_class = "TwitterAPI"
