"""Evolution: programmatic and LLM operators that grow the pool of validated tasks."""
