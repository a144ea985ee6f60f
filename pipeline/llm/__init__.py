"""LLM access (DESIGN §7): config, a validating/retrying/caching client, usage, a fake server."""

from pipeline.llm.client import LLMClient, LLMResult, OutputMode
from pipeline.llm.config import LLMConfig
from pipeline.llm.usage import UsageLedger

__all__ = ["LLMClient", "LLMConfig", "LLMResult", "OutputMode", "UsageLedger"]
