"""The conversation's renderer: tool outcomes, confirmations and questions for chat or voice."""

from __future__ import annotations

from collections.abc import Sequence

from app.conversation.reply_text import FailureKind
from app.domain.plan import ToolCall
from app.tools.executor import ToolOutcome
from app.tools.formatting import (
    Channel,
    render,
    render_answer,
    render_confirmation,
    render_failure,
    render_slot_question,
)


class AnswerRenderer:
    def outcomes(self, outcomes: Sequence[ToolOutcome], *, channel: Channel) -> str:
        parts = [self._one(outcome, channel) for outcome in outcomes]
        return "\n\n".join(p for p in parts if p)

    @staticmethod
    def _one(outcome: ToolOutcome, channel: Channel) -> str:
        # A listing that some peers could not contribute to still carries what the others knew;
        # the formatter says which peer is missing.
        if outcome.status == "ok" or (
            outcome.result is not None and outcome.status == "unavailable"
        ):
            return render(
                tool=outcome.call.tool, result=outcome.result, channel=channel, call=outcome.call
            )
        kind: FailureKind = outcome.status
        return render_failure(
            call=outcome.call,
            kind=kind,
            channel=channel,
            peer=outcome.peer,
            message=outcome.message,
        )

    def confirmation(self, call: ToolCall, *, channel: Channel) -> str:
        return render_confirmation(call, channel=channel)

    def question(self, call: ToolCall, missing: Sequence[str], *, channel: Channel) -> str:
        return render_slot_question(tool=call.tool, missing=missing, channel=channel, call=call)

    def plain(self, text: str, *, channel: Channel) -> str:
        return render_answer(text, channel=channel)
