"""The posting environment (BFCL ``TwitterAPI``): login, posts, comments, retweets, follows."""

from __future__ import annotations

from typing import Any

from envcheck import refusal

from pipeline.envs.posting import Posting


def make(**state: Any) -> Posting:
    env = Posting.from_state(state)
    assert isinstance(env, Posting)
    return env


def with_posts(authenticated: bool = True) -> Posting:
    return make(
        username="ann",
        password="pw",
        authenticated=authenticated,
        tweet_counter=12,
        tweets={
            "10": {
                "id": 10,
                "username": "ann",
                "content": "Solar roof installed",
                "tags": ["#energy"],
                "mentions": [],
            },
            "11": {
                "id": 11,
                "username": "ben",
                "content": "Rainy day",
                "tags": ["#Weather"],
                "mentions": ["@ann"],
            },
        },
    )


def test_defaults_match_upstream() -> None:
    state = Posting.from_state({}).bfcl_state()
    assert state == {
        "username": "john",
        "password": "john123",
        "authenticated": False,
        "tweets": {},
        "comments": {},
        "retweets": {},
        "following_list": ["alice", "bob"],
        "tweet_counter": 0,
    }


def test_login_success_and_failure() -> None:
    env = make(username="ann", password="pw")
    assert env.invoke("posting_get_login_status", {}) == {"login_status": False}
    assert env.invoke("authenticate_twitter", {"username": "ann", "password": "bad"}) == {
        "authentication_status": False
    }
    assert env.state.authenticated is False
    assert env.invoke("authenticate_twitter", {"username": "ann", "password": "pw"}) == {
        "authentication_status": True
    }
    assert env.invoke("posting_get_login_status", {}) == {"login_status": True}
    # a wrong password later does not log the user out (upstream behaviour)
    env.invoke("authenticate_twitter", {"username": "ann", "password": "bad"})
    assert env.state.authenticated is True


def test_post_uses_and_advances_the_counter() -> None:
    env = with_posts()
    first = env.invoke("post_tweet", {"content": "Hello", "tags": ["#hi"]})
    assert first == {
        "id": 12,
        "username": "ann",
        "content": "Hello",
        "tags": ["#hi"],
        "mentions": [],
    }
    second = env.invoke("post_tweet", {"content": "Again", "mentions": ["@ben"]})
    assert isinstance(second, dict) and second["id"] == 13
    assert env.state.tweet_counter == 14
    assert env.bfcl_state()["tweets"]["13"]["mentions"] == ["@ben"]


def test_comment_retweet_mention() -> None:
    env = with_posts()
    assert env.invoke("comment", {"tweet_id": 11, "comment_content": "Stay dry"}) == {
        "comment_status": "Comment added successfully"
    }
    assert env.bfcl_state()["comments"] == {"11": [{"username": "ann", "content": "Stay dry"}]}
    assert env.invoke("get_tweet_comments", {"tweet_id": 11}) == {
        "comments": [{"username": "ann", "content": "Stay dry"}]
    }
    assert env.invoke("retweet", {"tweet_id": 11}) == {"retweet_status": "Successfully retweeted"}
    assert env.invoke("retweet", {"tweet_id": 11}) == {"retweet_status": "Already retweeted"}
    assert env.bfcl_state()["retweets"] == {"ann": [11]}
    assert env.invoke("mention", {"tweet_id": 10, "mentioned_usernames": ["@cy", "@dee"]}) == {
        "mention_status": "Users mentioned successfully"
    }
    assert env.state.tweets["10"].mentions == ["@cy", "@dee"]


def test_follow_unfollow_and_stats() -> None:
    env = with_posts()
    assert env.invoke("follow_user", {"username_to_follow": "cy"}) == {"follow_status": True}
    assert env.invoke("follow_user", {"username_to_follow": "cy"}) == {"follow_status": False}
    assert env.invoke("unfollow_user", {"username_to_unfollow": "alice"}) == {
        "unfollow_status": True
    }
    assert env.invoke("unfollow_user", {"username_to_unfollow": "zed"}) == {
        "unfollow_status": False
    }
    assert env.invoke("list_all_following", {}) == {"following_list": ["bob", "cy"]}
    env.invoke("retweet", {"tweet_id": 11})
    assert env.invoke("get_user_stats", {"username": "ann"}) == {
        "tweet_count": 1,
        "following_count": 2,
        "retweet_count": 1,
    }
    assert env.invoke("get_user_stats", {"username": "ben"}) == {
        "tweet_count": 1,
        "following_count": 0,
        "retweet_count": 0,
    }


def test_reads() -> None:
    env = with_posts(authenticated=False)
    assert env.invoke("get_tweet", {"tweet_id": 11}) == {
        "id": 11,
        "username": "ben",
        "content": "Rainy day",
        "tags": ["#Weather"],
        "mentions": ["@ann"],
    }
    assert ids(env.invoke("search_tweets", {"keyword": "weather"}), "matching_tweets") == [11]
    assert ids(env.invoke("search_tweets", {"keyword": "SOLAR"}), "matching_tweets") == [10]
    assert ids(env.invoke("get_user_tweets", {"username": "ann"}), "user_tweets") == [10]


def ids(result: Any, key: str) -> list[int]:
    return [tweet["id"] for tweet in result[key]]


def test_misuse_is_refused_and_changes_nothing() -> None:
    logged_out = with_posts(authenticated=False)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("post_tweet", {"content": "x"}),
        ("comment", {"tweet_id": 10, "comment_content": "x"}),
        ("retweet", {"tweet_id": 10}),
        ("follow_user", {"username_to_follow": "x"}),
        ("unfollow_user", {"username_to_unfollow": "bob"}),
        ("list_all_following", {}),
        ("mention", {"tweet_id": 10, "mentioned_usernames": ["@x"]}),
    ]
    for tool, args in calls:
        refusal(logged_out, tool, args, "not logged in")
    env = with_posts()
    refusal(env, "comment", {"tweet_id": 99, "comment_content": "x"}, "not found")
    refusal(env, "retweet", {"tweet_id": 99}, "not found")
    refusal(env, "get_tweet", {"tweet_id": 99}, "not found")
    refusal(env, "post_tweet", {"content": "   "}, "must not be empty")
    refusal(env, "post_tweet", {"content": "x" * 20_000}, "too long")
    refusal(env, "mention", {"tweet_id": 10, "mentioned_usernames": []}, "at least one")
    refusal(env, "get_tweet", {"tweet_id": "10"}, "invalid arguments")


def test_upstream_config_shapes_are_accepted() -> None:
    env = Posting.from_bfcl_config(
        {
            "username": "tech_guru",
            "password": "p",
            "authenticated": True,
            "tweet_counter": 2,
            "tweets": {
                "0": {"id": 0, "username": "tech_guru", "content": "c", "tags": [], "mentions": []}
            },
            "comments": {"1": [{"username": "tech_guru", "comment": "old-style comment"}]},
        }
    )
    assert env.bfcl_state()["comments"]["1"][0]["comment"] == "old-style comment"
    assert env.bfcl_state()["following_list"] == ["alice", "bob"]


def test_tool_set() -> None:
    specs = Posting.tool_specs()
    assert len(specs) == 14
    assert specs["post_tweet"].param_names == ("content", "tags", "mentions")
    assert specs["post_tweet"].parameters["required"] == ["content"]
