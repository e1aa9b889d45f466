"""Wire formats: one pure codec per API format (OpenAI, Anthropic, Gemini, OpenAI Responses), with no I/O.

The internal shape is OpenAI chat completions: a request body, a `chat.completion` reply and
`chat.completion.chunk` stream chunks as plain dicts, with usage as a `Usage`. Each codec translates its
format to and from that shape, in both directions, so a client of any format reaches a provider of any
format through the same pipeline. Functions are named by the direction data flows (`anthropic_to_chat`,
`chat_to_anthropic`, ...).

`checks` holds what every codec needs to read hostile client JSON (a malformed field is a 400 naming it), and
`openai` also reads the internal shape for the codecs that translate it, so each codec keeps only its own
mapping.
"""
