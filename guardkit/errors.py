"""The base of every error guardkit raises for a problem the user can fix; the CLI prints these without a traceback."""


class GuardkitError(Exception):
    """A problem with the user's input, files or environment; the message says what to do."""


def server_refusal(error) -> str:
    """What an OpenAI-compatible server said when it refused a request (an `openai.APIStatusError`).

    FastAPI servers (`transformers serve`, vLLM) put the reason in the body's `detail`, which the
    client's own message ("Error code: 400") leaves out.
    """
    body = getattr(error, "body", None)
    detail = body.get("detail") if isinstance(body, dict) else None
    if detail:
        return f"{error.message}: {detail}"
    return str(error.message)
