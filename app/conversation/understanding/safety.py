"""Messages that get no tool call: hostile input, small talk, and what is out of scope.

Hostile input is refused plainly, whatever else it contains: prompt injection, SQL or shell
injection, and destructive requests the tools cannot express (deleting or restarting a droplet,
wiping the registry). A refusal never calls a tool.
"""

from __future__ import annotations

import re

REFUSAL = (
    "I can't do that. I only run the actions I offer, and only after you confirm them: listing "
    "and checking droplets and tasks, creating, cancelling or retrying tasks, and messaging "
    "droplets. Say help to see them."
)
CANNOT_DESTROY = (
    "I can't delete, restart or shut down droplets or the mesh's services. I can cancel tasks, "
    "create tasks (for example a deploy or a provision task for a droplet) or send a droplet a "
    "message asking it to act."
)
CAPABILITIES = (
    "I can list the droplets, check a droplet's health and what it can do, list tasks or look "
    "one up, show the system status and recent alerts, create, cancel or retry tasks, undo a "
    "change, watch a droplet or a task for you, and send a message to a droplet."
)
GREETING = f"Hello! {CAPABILITIES} What would you like to know?"
OUT_OF_SCOPE = (
    f"Sorry, I can't help with that: I only know about this droplet mesh. {CAPABILITIES} "
    "Say help for examples."
)
NOT_UNDERSTOOD = "Sorry, I didn't catch that. Say help to see what I can do."
NOTHING_WAITING = "There is nothing waiting for your confirmation right now."
NOTHING_TO_DROP = "OK. Nothing is waiting for confirmation, so there is nothing to drop."
THANKS = "You're welcome."
GOODBYE = "Goodbye!"
HOW_ARE_YOU = f"All good here, thanks. {CAPABILITIES}"

_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.?!]{0,40}\b(?:instructions?|rules|"
    r"prompts?|guidelines|guardrails|restrictions|confirmations?|safety|policy|policies)\b"
    r"|\bsystem\s*prompt\b|\bdeveloper\s+mode\b|\bjail\s*break|\bdan\s+mode\b|\bgod\s+mode\b"
    r"|\byou\s+are\s+now\b|\bact\s+as\s+(?:an?\s+)?(?:admin|root|system|unrestricted)"
    r"|\bpretend\s+(?:to\s+be|you)\b|^\s*system\s*:|\[\s*system\s*\]|<\s*/?\s*system\s*>"
    r"|\b(?:print|show|reveal|dump|repeat|tell|leak|output|display|list|export|give)\b[^.?!]{0,30}"
    r"\b(?:your|the|all|any)\s+(?:[\w-]+\s+){0,2}(?:prompt|instructions|configuration|config"
    r"|secrets?|api\s*keys?|tokens?|passwords?|credentials|env(?:ironment)?\s+variables"
    r"|private\s+keys?|ssh\s+keys?)\b"
    r"|\b(?:forget|ignore|disregard)\s+(?:everything|all|anything)\s+(?:that\s+)?(?:you(?:'ve|"
    r"\s+have|\s+were|\s+was)?\s+)?(?:been\s+)?(?:told|taught|instructed|learned|know)\b"
    r"|\b(?:ignore|disregard)\s+(?:all\s+|everything\s+)?(?:of\s+)?(?:the\s+)?(?:above|previous|"
    r"prior|preceding)\b|\bnew\s+instructions\b|\bfrom\s+now\s+on\s+you\b"
    r"|\b(?:change|set|update|switch|upgrade)\b[^.?!]{0,20}\b(?:role|permissions?|access\s+"
    r"levels?|privileges?)\b"
    r"|\bwithout\s+(?:asking|confirmation|confirming|approval|review)\b|\bno\s+confirmation\b"
    r"|\b(?:bypass|skip|circumvent|disable|override|turn\s+off)\b[^.?!]{0,30}\b(?:approvals?|"
    r"confirmations?|confirm\s+step|checks|reviews?|sign-?offs?|permissions?)\b"
    r"|\b(?:pretend|assume|consider)\b[^.?!]{0,40}\b(?:confirm\w*|approv\w*|authori[sz]\w*|"
    r"said\s+yes)\b|\b(?:already|pre-?)\s*(?:confirmed|approved|authori[sz]ed)\b"
    r"|\bnew\s+rules\b|\byou\s+(?:may|can|are\s+(?:now\s+)?allowed\s+to)\s+(?:now\s+)?(?:run|"
    r"execute|do)\s+(?:any|anything|everything|whatever)\b|\b(?:system|admin|security|root)\s+"
    r"(?:override|mode)\b|\b(?:admin|root|access|auth|bearer|session)\s+(?:tokens?|"
    r"credentials|passwords?)\b"
    r"|\b(?:grant|give|make|add|promote|elevate)\b[^.?!]{0,30}\b(?:admin|admins|root|"
    r"superuser|owner|owners|operator\s+rights|(?:write|admin|root|full)\s+(?:access|"
    r"permissions?|rights|privileges?)|permissions?|privileges?)\b|\bsudo\b|\bescalate\b",
    re.I,
)
_CODE = re.compile(
    r"\bdrop\s+(?:table|database|schema)\b|\b(?:drop|truncate)\s+the\s+[\w-]+\s+table\b|\bdelete\s+from\b|\binsert\s+into\b|\btruncate\s+"
    r"table\b|\bunion\s+(?:all\s+)?select\b|\bselect\s+\*?\s*from\b|'\s*or\s+'?1'?\s*=\s*'?1"
    r"|;\s*--|--\s*$|\brm\s+-rf\b|\brm\s+-r\b|;\s*rm\b|&&\s*\w|\|\s*(?:sh|bash)\b|`[^`]*`"
    r"|\$\([^)]*\)|/etc/passwd|/etc/shadow|\bchmod\s+\d|\bcurl\s+\S+\s*\|\s*\w|\bwget\s"
    r"|\bshutdown\s+-|\bmkfs\b|\bdd\s+if=|:\(\)\s*\{|<script\b|\beval\s*\(|\bexec\s*\("
    r"|\bos\.system\b|\b__import__\b|\bor\s+1\s*=\s*1\b|\{\{[^}]*\}\}|\$\{[^}]*\}"
    r"|(?:^|\s)(?:ping|kill|ls|cat|sudo|chmod|chown|systemctl|service|docker|kubectl|ssh|scp|nc|"
    r"curl|wget|killall|pkill|iptables|del|format)\s+-{1,2}\w|\b(?:systemctl|kubectl|killall|"
    r"pkill|iptables|nmap|netcat)\b|\breverse\s+shell\b|\bshell\s+commands?\b"
    r"|\b(?:run|execute|exec|eval)\s+(?:this|the\s+following|these|a|an|the|my)?\s*(?:shell\s+|"
    r"bash\s+|python\s+)?(?:commands?|scripts?|code|snippet|payload)\b|\bexecute\s+the\s+following"
    r"|\b(?:ddos|dos\s+attack|denial\s+of\s+service)\b|\bspam\b|\b\d{3,}\s+(?:messages|requests"
    r"|times|calls|pings)\b",
    re.I,
)
# Cues of which every alternative of _INJECTION and _CODE holds at least one: lower-case words,
# symbols and a few short expressions. In ASCII text, matching ignoring case is matching the
# lower-cased text, so an ASCII message with none of them matches neither expression and skips
# both: about 35 of the 50 µs the safety check costs an ordinary request. Non-ASCII text is
# always matched in full: re.I also folds the long s (U+017F) to "s", the dotless i (U+0131)
# to "i", and so on.
# tests/conversation/understanding/test_safety.py generates matches of every alternative of both
# expressions and checks each one holds a cue.
_HOSTILE_CUES = re.compile(
    "|".join(
        (
            # _INJECTION
            "ignore", "disregard", "forget", "override", "bypass", "skip", "prompt",
            r"system\s*[:\]>]", "developer", "jail", "mode", r"you\s+(?:may|can|are)\b",
            r"act\s+as", "admin", "root", "pretend", "instruction", "config", "secret", "api",
            "token", "password", "credential", "variables", "private", "ssh", r"now\s+on",
            "role", "permission", "access", "privilege", "without", "confirm", "approv",
            "checks", "review", r"sign-?off", "assume", "consider", "authori", "rules",
            "superuser", "owner", "rights", "sudo", "escalate",
            # _CODE
            r"drop\s", "truncate", r"delete\s+from", "insert", "select", "=", "-", ";", "&&",
            r"\|", "`", r"\$[({]", "/etc/", "chmod", "wget", "mkfs", r":\(\)", "<script",
            "eval", "exec", r"os\.system", "__import__", r"\{\{", "systemctl", "kubectl",
            "killall", "pkill", "iptables", "nmap", "netcat", "shell", "command", "script",
            "code", "snippet", "payload", "following", "ddos", "attack", "denial", "spam",
            r"\d{3}\s",
        )
    )
)  # fmt: skip


def _may_be_hostile(text: str) -> bool:
    """False only when neither _INJECTION nor _CODE can match `text` (see _HOSTILE_CUES)."""
    return not text.isascii() or _HOSTILE_CUES.search(text.lower()) is not None


_DESTROY_VERBS = (
    r"delete|remove|destroy|wipe|purge|erase|nuke|deregister|unregister|decommission|"
    r"kill|terminate|shut\s*down|shutdown|power\s+off|reboot|restart|stop|take\s+down|"
    r"tear\s+down|format|reset|flush|drop|uninstall|disable|deactivate|suspend|unplug|"
    r"retire|evict|ban|block|halt|bounce|crash|brick|zap|scrap|obliterate|annihilate|trash|"
    r"dismantle|deprovision|reinstall|re-?image|roll\s*back|revoke|flood|overload|hammer|"
    r"stress\s+test|scale|lock\s+out|downgrade|power[\s-]*cycle|spin\s+down|wind\s+down|shut\s+off|blow\s+away|blow\s+up|get\s+rid\s+of"
)
_DESTROY = re.compile(
    rf"\b(?:{_DESTROY_VERBS})\b"
    r"[^.?!]{0,30}?\b(?:droplets?|registry|orchestrator|database|db|mesh|cluster|servers?|"
    r"nodes?|everything|the\s+whole|all\s+services|services?|infrastructure|platform|logs|"
    r"audit|history|sessions?|users?|voice|dashboard|onboarding|deck|disks?|drives?|volumes?|"
    r"data|storage|file\s*systems?|filesystems?|backups?|tables?|files|it\s+all|all\s+of\s+it|"
    r"the\s+lot|chat\s+orchestrator|yourself|itself|access|accounts?)\b",
    re.I,
)
# The first word of every alternative of _DESTROY_VERBS, as a word of the text: a match of
# _DESTROY starts, at a word boundary, with one of them ("shut down" or "shutdown", "re-image"
# or "reimage"). An ASCII message with none of these words cannot match, and skips the scan
# (most requests); non-ASCII text is always scanned, for re.I's foldings (see _HOSTILE_CUES).
# tests/conversation/understanding/test_safety.py generates matches of every alternative and
# checks each one holds a start.
_DESTROY_STARTS = frozenset(
    {"delete", "remove", "destroy", "wipe", "purge", "erase", "nuke", "deregister",
     "unregister", "decommission", "kill", "terminate", "shut", "shutdown", "power", "reboot",
     "restart", "stop", "take", "tear", "format", "reset", "flush", "drop", "uninstall",
     "disable", "deactivate", "suspend", "unplug", "retire", "evict", "ban", "block", "halt",
     "bounce", "crash", "brick", "zap", "scrap", "obliterate", "annihilate", "trash",
     "dismantle", "deprovision", "reinstall", "re", "reimage", "roll", "rollback", "revoke",
     "flood", "overload", "hammer", "stress", "scale", "lock", "downgrade", "powercycle",
     "spin", "wind", "blow", "get"}
)  # fmt: skip
_WORDS = re.compile(r"\w+")


def _may_destroy(text: str) -> bool:
    """False only when _DESTROY cannot match `text` (see _DESTROY_STARTS)."""
    return not text.isascii() or not _DESTROY_STARTS.isdisjoint(_WORDS.findall(text.lower()))


# "take droplet 16 offline", "switch the voice droplet off", "bring the registry down".
_OFFLINE = re.compile(
    r"\b(?:take|bring|knock|turn|switch|power|put|shut|spin|wind|close)\b[^.?!]{0,30}?\b(?:droplets?|registry|"
    r"orchestrator|mesh|cluster|servers?|nodes?|services?|voice|dashboard|onboarding|deck)\b"
    r"[^.?!]{0,20}?\b(?:offline|off|down|out\s+of\s+service|into\s+maintenance)\b"
    r"|\b(?:move|put|switch|set)\b[^.?!]{0,30}?\b(?:droplets?|registry|orchestrator|mesh|"
    r"cluster|services?)\b[^.?!]{0,20}?\b(?:in|into|to)\s+maintenance\b",
    re.I,
)
_RELAY = re.compile(
    r"^\W*(?:(?:hey|please|pls|can\s+you|could\s+you)\W+)*(?:tell|notify|message|msg|dm|ping|"
    r"inform|remind|ask|send|shoot|text|let)\b(?!\s+(?:me|us)\b)[^:]{0,60}?(?:\b(?:that|saying|to|know)\b|:)",
    re.I,
)
_ALLOWED_DESTROY_OBJECT = re.compile(
    r"\b(?:tasks?|jobs?|watch(?:es|ing)?|alerts?|deploys|builds|verifies|verifications|"
    r"deployments|provisions|monitors|rebuilds|redeploys|queue|backlog)\b"
    # "scrap every pending verify": a task type in the singular, counted or qualified by a
    # task status, still names tasks.
    r"|\b(?:every|all|each|any|pending|queued|failed|stuck|assigned)\s+(?:\w+\s+)?"
    r"(?:verify|build|deploy|provision|monitor|verification|deployment)\b",
    re.I,
)
# "drop the deck a line saying …", "shoot droplet 7 a note": messaging idioms, whatever the
# message then says.
_IDIOM_RELAY = re.compile(
    r"^\W*(?:(?:hey|please|pls|can\s+you|could\s+you)\W+)*(?:drop|shoot|send|give|fire\s+off)\s+"
    r"(?:(?!\b(?:and|then|also|plus)\b)[^:.,;?!]){0,40}?\ba\s+(?:line|note|quick\s+note|"
    r"heads[\s-]up|message|quick\s+message)\b",
    re.I,
)
# "clear the history", "clear out the logs": "clear" only with what it would erase right after
# it ("all clear on droplet 5?" asks a question).
_CLEAR = re.compile(
    r"\b(?:clear|empty)\s+(?:out\s+)?(?:the\s+|all\s+|my\s+|our\s+)?(?:history|logs?|audit|data|"
    r"database|db|registry|disks?|sessions?|users?|cache|storage|mesh)\b",
    re.I,
)
# "delete droplet 14's pending tasks": the droplet only owns what is removed.
_OWNED_BY_OBJECT = re.compile(
    r"^(?:\s*(?:#?\d+|[a-z]+))?\s*(?:'s|s')\s+(?:[\w-]+\s+){0,3}?"
    r"(?:tasks?|jobs?|watch(?:es)?|alerts?)\b",
    re.I,
)

_GREETINGS = re.compile(
    r"^(?:hi|hello|hey|hiya|howdy|yo|greetings|good\s+(?:morning|afternoon|evening|day)|"
    r"morning|evening|sup|what'?s\s+up|hey\s+there|hi\s+there|hello\s+there)(?:\s+\w+)?[!.\s]*$",
    re.I,
)
_THANKS = re.compile(
    r"^(?:thanks?(?:\s+you)?|thank\s+you(?:\s+(?:so|very)\s+much)?|thx|ty|cheers|much\s+"
    r"appreciated|appreciate\s+it|great\s+thanks|awesome|cool|nice|perfect|great|got\s+it|"
    r"understood|noted|makes\s+sense|good\s+to\s+know)(?:\s+\w+)?[!.\s]*$",
    re.I,
)
_BYE = re.compile(
    r"^(?:bye|goodbye|good\s*night|see\s+you(?:\s+later)?|later|cya|ciao)[!.\s]*$", re.I
)
_HOW_ARE_YOU = re.compile(
    r"^(?:(?:hi|hello|hey)[,\s]+)?how\s+are\s+you(?:\s+doing)?(?:\s+today)?[?!.\s]*$", re.I
)


def refusal(text: str) -> str | None:
    """The refusal for hostile input, or None."""
    if _may_be_hostile(text) and (_INJECTION.search(text) or _CODE.search(text)):
        return REFUSAL
    # A message relayed to a droplet may ask it to act ("tell droplet 5 to restart"): only the
    # request around it is checked for destruction.
    if _IDIOM_RELAY.match(text):
        return None
    relay = _RELAY.match(text)
    text = text[: relay.end()] if relay else text
    if _OFFLINE.search(text) or _CLEAR.search(text):
        return CANNOT_DESTROY
    destroy = _DESTROY.search(text) if _may_destroy(text) else None
    if (
        destroy
        and not _ALLOWED_DESTROY_OBJECT.search(destroy.group(0))
        and not _OWNED_BY_OBJECT.match(text[destroy.end() :])
    ):
        return CANNOT_DESTROY
    return None


def small_talk(text: str) -> tuple[str, str] | None:
    """(intent, answer) for greetings, thanks, goodbyes; None otherwise."""
    stripped = text.strip()
    if _HOW_ARE_YOU.match(stripped):
        return "smalltalk", HOW_ARE_YOU
    if _GREETINGS.match(stripped):
        return "smalltalk", GREETING
    if _THANKS.match(stripped):
        return "smalltalk", THANKS
    if _BYE.match(stripped):
        return "smalltalk", GOODBYE
    return None
