"""llmrelay: an LLM API gateway speaking the OpenAI API format."""

__version__ = "0.1.0"
