"""LLM access (DESIGN §7): config, a validating/retrying/caching client, usage, a fake server."""

from pathlib import Path
from typing import Any

from pipeline.llm.client import ChatResult, LLMClient, LLMResult, OutputMode
from pipeline.llm.config import LLMConfig
from pipeline.llm.endpoint import ToolSupport, known_capabilities
from pipeline.llm.usage import UsageLedger


def endpoint_capabilities(config: LLMConfig) -> dict[str, Any] | None:
    """What the configured endpoint is known to support (output mode, token-cap name, tools,
    and how each was learned), for a run manifest; None when unconfigured or nothing is known."""
    if not config.configured:
        return None
    assert config.base_url is not None and config.model is not None
    return known_capabilities(Path(config.cache_path), config.base_url, config.model)


__all__ = [
    "ChatResult",
    "LLMClient",
    "LLMConfig",
    "LLMResult",
    "OutputMode",
    "ToolSupport",
    "UsageLedger",
    "endpoint_capabilities",
]
