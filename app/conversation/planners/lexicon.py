"""The words the offline planner listens for, grouped by what they signal.

Patterns run on lower-cased text with politeness already removed ("could you please ..."), so
each intent is recognised by meaning-bearing words rather than one sentence template.
"""

from __future__ import annotations

import re


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


# Politeness and filler: removed before looking for intent words.
FILLER = re.compile(
    r"\b(?:please|pls|plz|kindly|thanks|thank you|thx|could you|can you|would you mind|"
    r"would you|will you|i'd like to|i would like to|i want to|i wanna|i need to|"
    r"let me know|for me|hey|hi there|hi|hello|yo|good morning|good afternoon|good evening|"
    r"quick q|quick question|excuse me|when you get a chance|if you can|if possible|"
    r"real quick|just|actually|right now|currently|at the moment|a lot|"
    r"i was wondering (?:whether|if)|i wonder (?:whether|if)|do you know|i'd really appreciate "
    r"it if you could|i would appreciate it if you could|i'd appreciate it if you could|"
    r"really|maybe|ok so|okay so|so|now)\b"
)
CONTRACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bwhat'?s\b"), "what is"),
    (re.compile(r"\bhow'?s\b"), "how is"),
    (re.compile(r"\bwho'?s\b"), "who is"),
    (re.compile(r"\bwhere'?s\b"), "where is"),
    (re.compile(r"\bthat'?s\b"), "that is"),
    (re.compile(r"\bit's\b"), "it is"),
    (re.compile(r"\bthere'?s\b"), "there is"),
    (re.compile(r"\bcancell?ing\b"), "cancel"),
)

# ---- writes ---------------------------------------------------------------------------------
CREATE_VERB = _words(
    r"create", r"add", r"schedule", r"enqueue", r"submit", r"launch", r"kick\s*off",
    r"spin\s+up", r"set\s+up", r"fire\s+off", r"trigger", r"initiate", r"open", r"make",
    r"queue\s+up", r"queue(?=\s+(?:a|an|another|new)\b)",
)  # fmt: skip
NEW_TASK = re.compile(r"(?:^|\b(?:a|an|another|one)\s+)new\b")
# Weaker verbs count only right before the kind of work: "run a verification", "start monitoring".
SOFT_CREATE = re.compile(
    r"\b(?:run|start|begin|need|want|request|do|get|file|raise|generate|like)\s+"
    r"(?:(?:a|an|another|one|new|quick|some|the)\s+)*"
    r"(?:(?:urgent|critical|high|low|normal|medium|top|p\d+|priority|[\d-]+)[\s-]+)*"
    r"(?:verif\w*|validat\w*|build\w*|compil\w*|deploy\w*|redeploy\w*|monitor\w*|provision\w*|"
    r"custom|task|job)\b"
)
TYPE_VERB_START = re.compile(
    r"^(?:(?:p\d+|priority\s+\d+|urgent(?:ly)?|asap)[\s,]+)?"
    r"(?:verify|validate|build|deploy|redeploy|monitor|provision)\b(?!\s+(?:tasks|jobs)\b)"
    # A request named by its noun: "verification for droplet 17, code at ...".
    r"|^(?:an?\s+)?(?:new\s+)?(?:verification|validation|deployment|build|monitoring|provisioning)"
    r"\s+(?:task\s+|job\s+|run\s+)?(?:for|of|on)\s+(?:droplet|d\d|drop\d|the\b)"
)
TASK_NOUN_ANY = _words(r"tasks?", r"jobs?", r"tickets?")
TYPE_WORD = _words(
    r"verif\w*", r"validat\w*", r"build\w*", r"compil\w*", r"deploy\w*", r"redeploy\w*",
    r"monitor\w*", r"provision\w*", r"custom", r"roll[- ]?outs?", r"releases?",
)  # fmt: skip
MODIFY = _words(
    r"make it", r"make that", r"change", r"set it", r"set the", r"instead", r"actually",
    r"switch", r"use", r"update", r"lower", r"raise", r"bump", r"increase", r"decrease",
    r"rather",
)  # fmt: skip
CANCEL_VERB = _words(
    r"cancel", r"abort", r"kill", r"stop", r"terminate", r"drop", r"delete", r"remove",
    r"revoke", r"call\s+off", r"scrap", r"halt", r"nuke", r"axe", r"kill\s+off",
)  # fmt: skip
# What droplets cannot be asked to do through this assistant.
DROPLET_CONTROL = _words(
    r"restart", r"reboot", r"shut\s*down", r"start", r"stop", r"kill", r"power\s+(?:off|on)",
    r"bounce", r"scale", r"upgrade", r"turn\s+(?:off|on)", r"delete", r"remove", r"deregister",
    r"unregister",
)  # fmt: skip
SEND_VERB = _words(r"send", r"forward", r"relay", r"deliver", r"pass\s+on", r"post")
TELL_VERB = _words(
    r"tell", r"notify", r"inform", r"message", r"msg", r"ask", r"remind", r"warn", r"let",
    r"ping(?=.*(?:\bwith\b|\bsaying\b|:|[\"'“]))",
)  # fmt: skip
MESSAGE_NOUN = _words(r"message", r"msg", r"note", r"text", r"word", r"notice", r"reminder")

# ---- reads ----------------------------------------------------------------------------------
HELP = re.compile(
    r"^(?:help(?: me| please| pls)?|\?+|commands?|usage|menu|options|manual|instructions|"
    r"what can (?:you|i) (?:do|ask)|what (?:do|can) you (?:do|support|handle|understand)|"
    r"what else can you do|what are you|who are you|what is this|"
    r"how do i use (?:this|you|it)|how (?:does|do) (?:this|you|it) work|how to use (?:this|you)|"
    r"show me what you can do|what (?:are|is) your (?:commands|capabilities|features)|"
    r"what commands .*|list (?:the |your )?commands|how can you help(?: me)?)$"
)
HELP_WORD = _words(r"help", r"commands", r"usage")

TASKS_LIST = re.compile(
    r"\b(?:tasks|jobs|tickets|queue|backlog|workload|task list|task queue|todo)\b"
)
WORKING_ON = re.compile(
    r"\bwhat\b.*\b(?:doing|working on|busy with|up to|running|assigned)\b"
    r"|\b(?:working on|busy with)\b"
)
ALERTS_STRONG = _words(
    r"alerts?", r"alarms?", r"alarming", r"warnings?", r"incidents?", r"outages?", r"events?",
    r"notifications?", r"anomal\w*",
)  # fmt: skip
ALERTS_WEAK = _words(
    r"problems?", r"issues?", r"errors?", r"went wrong", r"wrong", r"broken", r"trouble",
    r"failures?", r"(?:go|goes|went|gone|going)\s+(?:down|offline)", r"crash\w*", r"died",
    r"flapping", r"worr(?:y|ying|ied)", r"concerning",
    r"what (?:has |have )?happened(?!\s+(?:to|with))",
)  # fmt: skip
DROPLETS_LIST = re.compile(
    r"\b(?:droplets|services|nodes|members|fleet|inventory|registered|registred|items|"
    r"droplet list|list of droplets|every droplet|all droplets|each droplet|"
    r"(?:who|what) is (?:online|up|down|offline|active|healthy|alive|unhealthy|inactive)|"
    r"(?:everything|anything|all|whatever|whichever) (?:that is |which is |that are |is |are )?"
    r"(?:online|down|offline|unhealthy|inactive|dead|unreachable))\b"
    r"|\b(?:list|show|display|all|every|which|any)\b.*\bdroplet\b"
)
ALL_PREDICATE = re.compile(r"\b(?:are|is)\s+(?:all|every|each)\b")
SYSTEM = _words(
    r"system", r"mesh", r"overall", r"everything", r"cluster", r"platform", r"overview",
    r"summary", r"dashboard", r"sitrep", r"big picture", r"things", r"infrastructure", r"infra",
    r"status report", r"health check", r"healthcheck", r"all good", r"in general",
)  # fmt: skip
STATUS_WORD = _words(
    r"status", r"state", r"health", r"healthy", r"up", r"alive", r"doing", r"ok", r"okay",
    r"fine", r"online", r"offline", r"down", r"working", r"responding", r"heartbeats?",
    r"details?", r"info", r"information", r"capabilit\w*", r"check", r"ping", r"looking",
    r"look", r"going", r"progress", r"done", r"finished", r"complete", r"completed", r"history",
    r"happened", r"fail", r"failed", r"assigned", r"going on", r"running", r"running\?",
    r"endpoint", r"version", r"cpu", r"memory", r"load", r"priority", r"result", r"results",
    r"stuck", r"where",
)  # fmt: skip
OVERALL_COUNTS = re.compile(r"\bhow many\b.*\b(?:overall|in total|altogether)\b")
TASK_AND_DROPLET = re.compile(
    r"\b(?:tasks|jobs)\b.*\b(?:droplets|services)\b|\b(?:droplets|services)\b.*\b(?:tasks|jobs)\b"
)
# A task state on its own ("what's in progress?", "anything pending?") asks for tasks.
TASK_STATE_QUESTION = re.compile(
    r"\b(?:show|list|what|which|any|anything|get)\b.*\b(?:in progress|in_progress|pending|queued|"
    r"ongoing|underway|running|completed|finished|failed)\b"
)

# A pronoun for the thing discussed last; "task"-words and "droplet"-words pick which one.
PRONOUN = re.compile(
    r"\b(?:it|its|it is|itself|that one|this one|the same one|the last one|the last task|"
    r"last task|that task|this task|the task|my task|the one|the task you just created|"
    r"the one you just created|that droplet|this droplet|the droplet|the same droplet|them|"
    r"that|this)\b"
)
TASK_MARKER = _words(
    r"task", r"job", r"done", r"finished", r"complete", r"completed", r"progress", r"going",
    r"assigned", r"history", r"happened", r"fail", r"failed", r"result", r"results", r"priority",
    r"created", r"running", r"stuck", r"status of the task", r"cancel",
)  # fmt: skip
DROPLET_MARKER = _words(
    r"droplet", r"healthy", r"health", r"up", r"alive", r"online", r"offline", r"down",
    r"heartbeats?", r"responding", r"capabilit\w*", r"endpoint", r"cpu", r"memory", r"reachable",
)  # fmt: skip

# Words that carry a request by themselves; states and filters do not ("the failed ones",
# "the healthy ones" only make sense after a previous request).
INTENT_CUES = re.compile(
    r"\b(?:list|show|display|get|give|fetch|check|view|see|status|state|health|tasks?|"
    r"jobs?|queue|droplets?|services|nodes|alerts?|alarms?|warnings?|incidents?|system|mesh|"
    r"overall|overview|summary|create|cancel|abort|send|tell|notify|help|registered|"
    r"everything|doing|working|problems?|issues?)\b"
)

# Words an operator of this mesh uses; the rest of a sentence counts as "foreign" and, when it
# dominates, marks a question as outside what this assistant does ("status of my pizza order").
STOPWORDS = frozenset(
    (
        "a", "an", "the", "of", "to", "for", "in", "on", "at", "by", "with", "from", "about", "as",
        "into", "over", "under", "and", "or", "but", "if", "then", "so", "is", "are", "was",
        "were", "be", "been", "being", "am", "do", "does", "did", "done", "have", "has", "had",
        "having", "i", "me", "my", "mine", "we", "us", "our", "you", "your", "it", "its", "this",
        "that", "these", "those", "there", "here", "what", "which", "who", "whom", "whose", "when",
        "where", "why", "how", "all", "any", "some", "every", "each", "no", "not", "none", "only",
        "just", "also", "too", "very", "more", "most", "less", "least", "can", "could", "would",
        "should", "will", "shall", "may", "might", "must", "let", "lets", "get", "got", "give",
        "gave", "tell", "show", "see", "look", "looking", "please", "thanks", "thank", "hey", "hi",
        "hello", "yo", "ok", "okay", "yes", "yeah", "sure", "right", "now", "currently",
        "anything", "something", "nothing", "everyone", "anyone", "one", "ones", "same", "else",
        "go", "goes", "come", "than", "like", "want", "need", "know", "think", "much", "many",
        "lot", "bit", "quick", "q", "real", "really", "up", "down", "out", "off", "again", "still",
        "yet", "ever", "already", "today", "tomorrow", "yesterday", "recently", "recent",
        "currently", "moment", "time", "last", "latest", "first", "next", "new", "old", "other",
        "another", "either", "neither", "going", "gone", "went", "happen", "happened", "happening",
        "doing", "working", "works", "work", "run", "running", "ran",
    )
)  # fmt: skip
DOMAIN_WORDS = frozenset(
    (
        "droplet", "droplets", "drop", "task", "tasks", "job", "jobs", "ticket", "tickets",
        "queue", "backlog", "workload", "status", "statuses", "state", "states", "health",
        "healthy", "unhealthy", "alive", "dead", "online", "offline", "active", "inactive", "idle",
        "error", "errors", "erroring", "failing", "failed", "fail", "failure", "failures",
        "broken", "wrong", "trouble", "problem", "problems", "issue", "issues", "incident",
        "incidents", "outage", "outages", "alert", "alerts", "alarm", "alarms", "warning",
        "warnings", "event", "events", "notification", "notifications", "system", "mesh",
        "cluster", "platform", "overview", "summary", "dashboard", "sitrep", "overall",
        "everything", "things", "infra", "infrastructure", "picture", "registry", "orchestrator",
        "registered", "register", "service", "services", "node", "nodes", "member", "members",
        "fleet", "inventory", "items", "item", "list", "listing", "display", "fetch", "view",
        "check", "checking", "ping", "pong", "heartbeat", "heartbeats", "responding", "respond",
        "reachable", "unreachable", "capability", "capabilities", "endpoint", "version", "cpu",
        "memory", "disk", "load", "metrics", "details", "detail", "info", "information", "history",
        "progress", "pending", "queued", "waiting", "assigned", "complete", "completed",
        "finished", "succeeded", "cancelled", "canceled", "aborted", "started", "stuck", "result",
        "results", "priority", "prio", "urgent", "critical", "high", "low", "normal", "medium",
        "highest", "lowest", "top", "create", "add", "make", "open", "start", "launch", "schedule",
        "kick", "spin", "fire", "trigger", "submit", "cancel", "abort", "kill", "stop",
        "terminate", "delete", "remove", "scrap", "halt", "send", "message", "msg", "note",
        "notify", "inform", "remind", "warn", "verify", "verification", "validate", "build",
        "builds", "deploy", "deployment", "deployments", "monitor", "monitoring", "provision",
        "provisioning", "custom", "title", "description", "payload", "code", "spec", "url", "repo",
        "help", "commands", "usage", "support", "supported", "ok", "fine", "good", "bad", "hour",
        "hours", "minute", "minutes", "day", "days", "week", "id", "ids", "number", "type",
        "types", "kind", "chat", "voice", "deck", "visibility", "assistant", "bot", "total",
        "count", "counts", "many", "how", "sort", "sorted", "order", "ordered", "by", "name",
        "names", "newest", "oldest", "overnight", "tonight", "morning", "night", "week", "weekend",
        "hour", "minute", "since", "worry", "worrying",
    )
)  # fmt: skip
