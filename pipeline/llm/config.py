"""Where the LLM endpoint and its limits come from: CLI > environment > TOML file > defaults."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

#: sent to local servers (llama.cpp, vLLM, Ollama) that ignore the key but the SDK insists on one
DUMMY_API_KEY = "not-needed"


def _as_int(text: str) -> int:
    return int(text.strip())


def _as_float(text: str) -> float:
    return float(text.strip())


def _as_str(text: str) -> str:
    return text.strip()


#: environment variable -> (field, parser); the values are strings, so they are parsed here
#: rather than by letting the strict model coerce them
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "ASYNCTOOL_LLM_BASE_URL": ("base_url", _as_str),
    "ASYNCTOOL_LLM_MODEL": ("model", _as_str),
    "OPENAI_API_KEY": ("api_key", _as_str),
    "ASYNCTOOL_LLM_CONCURRENCY": ("concurrency", _as_int),
    "ASYNCTOOL_LLM_RPM": ("requests_per_minute", _as_float),
    "ASYNCTOOL_LLM_TIMEOUT": ("timeout", _as_float),
}

#: defaults for a server on this machine or network (llama.cpp on a CPU answers one request at
#: a time: ~40 s to first token for a 1.5k-token prompt and ~16 tokens/s with the 1.5B model),
#: used for each setting no file, variable or flag gives. A queued request waits for the one
#: ahead, so the timeout covers two full answers; more than 2 in flight only lengthens the queue
#: (and with a short timeout the server goes on generating answers the client abandoned).
LOCAL_DEFAULTS: dict[str, Any] = {"concurrency": 2, "timeout": 600.0}


def is_local_url(url: str) -> bool:
    """Loopback, private-network and ``.local`` hosts: servers that need no real key."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith((".localhost", ".local")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


class LLMConfig(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    base_url: str | None = None
    model: str | None = None
    #: never written to manifests or logs (hidden from repr; left out of ``public_dict``)
    api_key: str | None = Field(default=None, repr=False)
    concurrency: int = Field(default=8, ge=1, le=4096)
    requests_per_minute: float | None = Field(default=None, gt=0)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=100)
    max_reasks: int = Field(default=2, ge=0, le=20)
    #: new samples drawn after a reply cut at the token cap (finish_reason=length)
    max_resamples: int = Field(default=2, ge=0, le=20)
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=1024, ge=1)
    # TOML and CLI give paths as strings
    cache_path: Annotated[Path, Strict(False)] = Path("output/cache/llm.sqlite")

    @property
    def configured(self) -> bool:
        return bool(self.base_url) and bool(self.model)

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        config_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> LLMConfig:
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        if config_file is not None:
            for key, value in _read_file(config_file).items():
                values[key] = value
                origin[key] = str(config_file)
        env = os.environ if environ is None else environ
        for variable, (field, parse) in ENVIRONMENT.items():
            text = env.get(variable, "")
            if not text.strip():
                continue
            try:
                values[field] = parse(text)
            except ValueError:
                raise ValueError(
                    f"environment variable {variable}={text!r} is not a valid {field}"
                ) from None
            origin[field] = f"environment variable {variable}"
        for key, value in (overrides or {}).items():
            if value is not None:  # an unset CLI flag
                values[key] = value
                origin[key] = "command-line override"
        local = bool(values.get("base_url")) and is_local_url(str(values["base_url"]))
        if local and not values.get("api_key"):
            values["api_key"] = DUMMY_API_KEY
        if local:
            for key, value in LOCAL_DEFAULTS.items():
                if key not in values:
                    values[key] = value
                    origin[key] = "default for a local endpoint"
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = []
            for item in error.errors():
                key = ".".join(str(part) for part in item["loc"]) or "?"
                where = origin.get(key.split(".")[0], "")
                problems.append(f"{key} ({where or 'unknown source'}): {item['msg']}")
            raise ValueError("invalid LLM configuration: " + "; ".join(problems)) from None

    def public_dict(self) -> dict[str, Any]:
        """For manifests: every setting except the key."""
        return self.model_dump(mode="json", exclude={"api_key"})


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ValueError(f"LLM config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"LLM config file {path} cannot be read: {error}") from None
    section = data.get("llm", data)
    if not isinstance(section, dict):
        raise ValueError(f"LLM config file {path}: [llm] must be a table")
    known = set(LLMConfig.model_fields)
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(
            f"LLM config file {path}: unknown key(s) {', '.join(unknown)}"
            f" (expected some of: {', '.join(sorted(known))})"
        )
    return dict(section)
