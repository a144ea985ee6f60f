"""LLM configuration: precedence, clear errors, and the key kept out of manifests."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.llm import LLMConfig, UsageLedger
from pipeline.llm.config import DUMMY_API_KEY, is_local_url


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_source() -> None:
    config = LLMConfig.load(environ={})
    assert config == LLMConfig()
    assert not config.configured
    assert config.concurrency == 8 and config.max_retries == 6 and config.max_reasks == 2


def test_precedence_overrides_then_environment_then_file(tmp_path: Path) -> None:
    file = write(
        tmp_path / "llm.toml",
        '[llm]\nbase_url = "http://file:1/v1"\nmodel = "file-model"\nconcurrency = 3\n'
        'timeout = 5\ntemperature = 0.1\ncache_path = "x/cache.sqlite"\n',
    )
    environ = {"ASYNCTOOL_LLM_MODEL": "env-model", "ASYNCTOOL_LLM_CONCURRENCY": "5"}
    config = LLMConfig.load(
        overrides={"concurrency": 9, "model": None, "max_reasks": 0},
        config_file=file,
        environ=environ,
    )
    assert config.base_url == "http://file:1/v1"  # only the file sets it
    assert config.model == "env-model"  # environment beats file; a None override is unset
    assert config.concurrency == 9  # override beats environment
    assert config.max_reasks == 0
    assert config.timeout == 5.0 and config.temperature == 0.1
    assert config.cache_path == Path("x/cache.sqlite")
    assert config.configured


def test_file_without_llm_table_and_environment_numbers(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", 'model = "m"\nrequests_per_minute = 30\n')
    environ = {"ASYNCTOOL_LLM_RPM": "120.5", "ASYNCTOOL_LLM_BASE_URL": " https://api.example/v1 "}
    config = LLMConfig.load(config_file=file, environ=environ)
    assert config.requests_per_minute == 120.5
    assert config.base_url == "https://api.example/v1"
    assert config.api_key is None  # a remote endpoint gets no made-up key


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[llm]\nmodle = "typo"\n', "modle"),
        ("[llm]\nconcurrency = 0\n", "concurrency"),
        ('[llm]\nconcurrency = "8"\n', "concurrency"),
        ("[llm\n", "cannot be read"),
        ("llm = 3\n", "must be a table"),
    ],
)
def test_bad_config_file_names_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    file = write(tmp_path / "bad.toml", text)
    with pytest.raises(ValueError) as caught:
        LLMConfig.load(config_file=file, environ={})
    assert fragment in str(caught.value)
    assert "bad.toml" in str(caught.value)


def test_missing_file_and_bad_environment_value(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        LLMConfig.load(config_file=tmp_path / "nope.toml", environ={})
    with pytest.raises(ValueError, match="ASYNCTOOL_LLM_CONCURRENCY"):
        LLMConfig.load(environ={"ASYNCTOOL_LLM_CONCURRENCY": "many"})
    with pytest.raises(ValueError, match="timeout .command-line override."):
        LLMConfig.load(overrides={"timeout": -1.0}, environ={})


def test_api_key_stays_out_of_manifests_and_repr() -> None:
    config = LLMConfig.load(
        overrides={"base_url": "https://api.example/v1", "model": "m"},
        environ={"OPENAI_API_KEY": "sk-secret"},
    )
    assert config.api_key == "sk-secret"
    public = config.public_dict()
    assert "api_key" not in public
    assert "sk-secret" not in repr(config) and "sk-secret" not in str(public)
    assert public["model"] == "m" and public["cache_path"] == "output/cache/llm.sqlite"


def test_local_endpoint_gets_a_dummy_key() -> None:
    config = LLMConfig.load(overrides={"base_url": "http://127.0.0.1:8181/v1"}, environ={})
    assert config.api_key == DUMMY_API_KEY
    assert is_local_url("http://localhost:11434/v1") and is_local_url("http://192.168.1.9/v1")
    assert not is_local_url("https://api.openai.com/v1")


def test_usage_ledger_counts_exactly_across_threads() -> None:
    ledger = UsageLedger()

    def work() -> None:
        for _ in range(1000):
            ledger.record("deepen", requests=1, prompt_tokens=3)
            ledger.record("judge", cache_hits=1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = ledger.as_dict()
    assert list(usage) == ["deepen", "judge"]
    assert usage["deepen"]["requests"] == 8000 and usage["deepen"]["prompt_tokens"] == 24000
    assert usage["judge"]["cache_hits"] == 8000 and usage["judge"]["failures"] == 0
    assert ledger.total()["requests"] == 8000
