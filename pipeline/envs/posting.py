"""Social posting: posts, comments, retweets and follows (BFCL ``TwitterAPI``).

Latencies: a social network answers reads (a post, a user's posts, a search, statistics) from
caches in 0.3-0.6 s; logging in checks a password hash, about 0.8 s; writes (posting,
commenting, retweeting, mentioning, following) go through an authenticated API and fan out to
followers, about 0.8-1.2 s.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, JsonValue

from pipeline.envs.base import Environment, EnvState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

_READ = 0.4
_SEARCH = 0.6
_LOGIN = 0.8
_WRITE = 0.9
_POST = 1.2

_MAX_TEXT = 10_000
_MAX_ITEMS = 100

#: the fields of one shown tweet (see ``Posting._show``)
_TWEET_FIELDS: dict[str, Sem] = {
    "id": Sem.POST_ID,
    "username": Sem.USER_NAME,
    "content": Sem.TEXT,
    "tags.*": Sem.TAG,
    "mentions.*": Sem.USER_NAME,
}


def _tweet_types(prefix: str = "") -> dict[str, Sem]:
    """Result types of a tweet shown at ``prefix`` (a whole result when empty)."""
    return {f"{prefix}.{path}" if prefix else path: sem for path, sem in _TWEET_FIELDS.items()}


class Tweet(EnvState):
    """One post."""

    id: int
    username: str
    content: str
    tags: list[str] = Field(default_factory=list)
    mentions: list[str] = Field(default_factory=list)


class PostingState(EnvState):
    """One user's session on a small social network and everything posted on it."""

    username: str = "john"
    password: str = "john123"
    authenticated: bool = False
    #: posts keyed by their id (as a string)
    tweets: dict[str, Tweet] = Field(default_factory=dict)
    #: comments keyed by post id; each comment is {"username", "content"}
    comments: dict[str, list[dict[str, str]]] = Field(default_factory=dict)
    #: post ids each user has retweeted, keyed by username
    retweets: dict[str, list[int]] = Field(default_factory=lambda: {})
    following_list: list[str] = Field(default_factory=lambda: ["alice", "bob"])
    #: the id the next post gets
    tweet_counter: int = 0


def _text(value: str, what: str) -> str:
    if not value.strip():
        raise ToolError(f"{what} must not be empty")
    if len(value) > _MAX_TEXT:
        raise ToolError(f"{what} is too long (at most {_MAX_TEXT} characters)")
    return value


def _names(values: list[str], what: str) -> list[str]:
    if len(values) > _MAX_ITEMS:
        raise ToolError(f"at most {_MAX_ITEMS} {what} are allowed")
    for value in values:
        if not value.strip() or len(value) > 200:
            raise ToolError(f"each of the {what} must be a non-empty name under 200 characters")
    return list(values)


class Posting(Environment[PostingState]):
    name = "posting"
    state_model = PostingState
    bfcl_class = "TwitterAPI"

    # ----- helpers ---------------------------------------------------------------------
    def _require_login(self, action: str) -> None:
        if not self.state.authenticated:
            raise ToolError(f"not logged in: authenticate before {action}")

    def _tweet(self, tweet_id: int) -> Tweet:
        tweet = self.state.tweets.get(str(tweet_id))
        if tweet is None:
            raise ToolError(f"tweet with id {tweet_id} not found")
        return tweet

    @staticmethod
    def _show(tweet: Tweet) -> dict[str, JsonValue]:
        shown: dict[str, JsonValue] = tweet.model_dump(mode="json")
        return shown

    # ----- session ---------------------------------------------------------------------
    @tool(ToolKind.WRITE, _LOGIN, returns={"authentication_status": Sem.STATUS})
    def authenticate_twitter(
        self, username: Annotated[str, Sem.USER_NAME], password: Annotated[str, Sem.CREDENTIAL]
    ) -> dict[str, JsonValue]:
        """Log in with a username and password; a wrong pair leaves the session as it was.

        Args:
            username: The user's username.
            password: The user's password.
        """
        if username == self.state.username and password == self.state.password:
            self.state.authenticated = True
            return {"authentication_status": True}
        return {"authentication_status": False}

    @tool(ToolKind.READ, _READ, returns={"login_status": Sem.STATUS})
    def posting_get_login_status(self) -> dict[str, JsonValue]:
        """Tell whether the current user is logged in."""
        return {"login_status": self.state.authenticated}

    # ----- posting ---------------------------------------------------------------------
    @tool(ToolKind.WRITE, _POST, returns=_tweet_types())
    def post_tweet(
        self,
        content: Annotated[str, Sem.TEXT],
        tags: Annotated[list[str] | None, Sem.TAG] = None,
        mentions: Annotated[list[str] | None, Sem.USER_NAME] = None,
    ) -> dict[str, JsonValue]:
        """Publish a tweet as the logged-in user.

        Args:
            content: The text of the tweet.
            tags: Hashtags for the tweet, each starting with '#'. Optional.
            mentions: Users mentioned in the tweet, each starting with '@'. Optional.
        """
        self._require_login("posting")
        tweet = Tweet(
            id=self.state.tweet_counter,
            username=self.state.username,
            content=_text(content, "content"),
            tags=_names(tags or [], "tags"),
            mentions=_names(mentions or [], "mentions"),
        )
        self.state.tweets[str(tweet.id)] = tweet
        self.state.tweet_counter += 1
        return self._show(tweet)

    @tool(ToolKind.WRITE, _WRITE, returns={"retweet_status": Sem.STATUS})
    def retweet(self, tweet_id: Annotated[int, Sem.POST_ID]) -> dict[str, JsonValue]:
        """Retweet a tweet as the logged-in user.

        Args:
            tweet_id: The id of the tweet to retweet.
        """
        self._require_login("retweeting")
        self._tweet(tweet_id)
        mine = self.state.retweets.get(self.state.username, [])
        if tweet_id in mine:
            return {"retweet_status": "Already retweeted"}
        self.state.retweets[self.state.username] = [*mine, tweet_id]
        return {"retweet_status": "Successfully retweeted"}

    @tool(ToolKind.WRITE, _WRITE, returns={"comment_status": Sem.STATUS})
    def comment(
        self, tweet_id: Annotated[int, Sem.POST_ID], comment_content: Annotated[str, Sem.TEXT]
    ) -> dict[str, JsonValue]:
        """Comment on a tweet as the logged-in user.

        Args:
            tweet_id: The id of the tweet to comment on.
            comment_content: The text of the comment.
        """
        self._require_login("commenting")
        self._tweet(tweet_id)
        content = _text(comment_content, "comment_content")
        entry = {"username": self.state.username, "content": content}
        self.state.comments.setdefault(str(tweet_id), []).append(entry)
        return {"comment_status": "Comment added successfully"}

    @tool(ToolKind.WRITE, _WRITE, returns={"mention_status": Sem.STATUS})
    def mention(
        self,
        tweet_id: Annotated[int, Sem.POST_ID],
        mentioned_usernames: Annotated[list[str], Sem.USER_NAME],
    ) -> dict[str, JsonValue]:
        """Add mentions of users to an existing tweet.

        Args:
            tweet_id: The id of the tweet to add the mentions to.
            mentioned_usernames: The usernames to mention.
        """
        self._require_login("mentioning users")
        tweet = self._tweet(tweet_id)
        names = _names(mentioned_usernames, "mentioned usernames")
        if not names:
            raise ToolError("give at least one username to mention")
        if len(tweet.mentions) + len(names) > _MAX_ITEMS:
            raise ToolError(f"a tweet can mention at most {_MAX_ITEMS} users")
        tweet.mentions.extend(names)
        return {"mention_status": "Users mentioned successfully"}

    # ----- following ---------------------------------------------------------------------
    @tool(ToolKind.WRITE, _WRITE, returns={"follow_status": Sem.STATUS})
    def follow_user(
        self, username_to_follow: Annotated[str, Sem.USER_NAME]
    ) -> dict[str, JsonValue]:
        """Follow another user; following someone already followed changes nothing.

        Args:
            username_to_follow: The username of the user to follow.
        """
        self._require_login("following users")
        name = _names([username_to_follow], "usernames")[0]
        if name in self.state.following_list:
            return {"follow_status": False}
        self.state.following_list.append(name)
        return {"follow_status": True}

    @tool(ToolKind.WRITE, _WRITE, returns={"unfollow_status": Sem.STATUS})
    def unfollow_user(
        self, username_to_unfollow: Annotated[str, Sem.USER_NAME]
    ) -> dict[str, JsonValue]:
        """Stop following a user; a user not followed is left as is.

        Args:
            username_to_unfollow: The username of the user to unfollow.
        """
        self._require_login("unfollowing users")
        if username_to_unfollow not in self.state.following_list:
            return {"unfollow_status": False}
        self.state.following_list.remove(username_to_unfollow)
        return {"unfollow_status": True}

    @tool(ToolKind.READ, _READ, returns={"following_list.*": Sem.USER_NAME})
    def list_all_following(self) -> dict[str, JsonValue]:
        """List the users the logged-in user follows."""
        self._require_login("listing followed users")
        following: list[JsonValue] = list(self.state.following_list)
        return {"following_list": following}

    # ----- reading ---------------------------------------------------------------------
    @tool(ToolKind.READ, _READ, returns=_tweet_types())
    def get_tweet(self, tweet_id: Annotated[int, Sem.POST_ID]) -> dict[str, JsonValue]:
        """Fetch one tweet by its id.

        Args:
            tweet_id: The id of the tweet.
        """
        return self._show(self._tweet(tweet_id))

    @tool(ToolKind.READ, _READ, returns=_tweet_types("user_tweets.*"))
    def get_user_tweets(self, username: Annotated[str, Sem.USER_NAME]) -> dict[str, JsonValue]:
        """List every tweet posted by a user, oldest first.

        Args:
            username: The username whose tweets to list.
        """
        found: list[JsonValue] = [
            self._show(tweet) for tweet in self.state.tweets.values() if tweet.username == username
        ]
        return {"user_tweets": found}

    @tool(ToolKind.READ, _SEARCH, returns=_tweet_types("matching_tweets.*"))
    def search_tweets(self, keyword: Annotated[str, Sem.KEYWORD]) -> dict[str, JsonValue]:
        """Find tweets whose text or tags contain a keyword (case-insensitive).

        Args:
            keyword: The word to look for.
        """
        needle = _text(keyword, "keyword").lower()
        found: list[JsonValue] = [
            self._show(tweet)
            for tweet in self.state.tweets.values()
            if needle in tweet.content.lower() or any(needle in tag.lower() for tag in tweet.tags)
        ]
        return {"matching_tweets": found}

    # a comment is {"username", "content"}; BFCL configs name the text "comment"
    @tool(
        ToolKind.READ,
        _READ,
        returns={"comments.*.username": Sem.USER_NAME, "comments.*.*": Sem.TEXT},
    )
    def get_tweet_comments(self, tweet_id: Annotated[int, Sem.POST_ID]) -> dict[str, JsonValue]:
        """List the comments on a tweet, oldest first.

        Args:
            tweet_id: The id of the tweet.
        """
        self._tweet(tweet_id)
        entries = self.state.comments.get(str(tweet_id), [])
        comments: list[JsonValue] = [dict(entry) for entry in entries]
        return {"comments": comments}

    @tool(
        ToolKind.READ,
        _READ,
        returns={
            "tweet_count": Sem.COUNT,
            "following_count": Sem.COUNT,
            "retweet_count": Sem.COUNT,
        },
    )
    def get_user_stats(self, username: Annotated[str, Sem.USER_NAME]) -> dict[str, JsonValue]:
        """Count a user's tweets, retweets and (for the logged-in user) followed accounts.

        Args:
            username: The username to report on.
        """
        tweets = sum(1 for tweet in self.state.tweets.values() if tweet.username == username)
        following = len(self.state.following_list) if username == self.state.username else 0
        return {
            "tweet_count": tweets,
            "following_count": following,
            "retweet_count": len(self.state.retweets.get(username, [])),
        }
