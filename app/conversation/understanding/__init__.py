"""The offline planner: understanding a message without a model.

text -> tokens (number words, fillers, typos) -> entities (ids, priorities, limits, states,
types, URLs, message text) -> requests (compound messages split) -> the tool each request names
(scored from the tools' own cues) -> its arguments (from the tools' own slots) -> a plan with a
calibrated confidence.
"""
