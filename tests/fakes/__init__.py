"""Local HTTP fakes of the model APIs, for tests, the benchmark and `make eval`.

`FakeGemini` (tests.fakes.gemini) and `FakeOpenAI` (tests.fakes.openai): real servers on loopback,
scripted with `push(...)`, a `responder(request) -> reply | None`, a `default` reply and a fixed
`delay_s`; every request is recorded in `requests`.
"""
