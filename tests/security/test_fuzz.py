"""Hostile input: whatever is typed after /drift, and whatever is in alignbot.yml.

(The connector parsers — CSV, EPCIS, X12, REST payloads — are fuzzed in
tests/connectors/test_parser_fuzz.py.)"""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, load_config
from bot.demo import EXAMPLE_CONFIG
from bot.drift_query import (
    DRIFT_USAGE,
    MAX_RECOMMENDATION_ID,
    DriftQuery,
    Usage,
    parse_drift_args,
)
from tests.security.conftest import WAIT

PLANNER = "U0PLAN1"
# "teams[1].channel: field required", "(top level): ...", "line 3, column 5: not valid YAML";
# a key path is whatever keys the user wrote, so any non-empty text before ": "
PROBLEM = re.compile(r"^(\(top level\)|line \d+, column \d+|(?s:.+?)): \S")

# The demo stack of the other tests runs in this process and its retry jitter uses the global
# `random`; Hypothesis notices the global state moving and warns. Not our strategies' doing.
QUIET = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


slash_text = st.one_of(
    st.text(max_size=120),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.lists(st.sampled_from(["SKU-10042", "DC-DAL", ">", "->", "→", "#", "#0", "42", "mine",
                              "help", " ", "\t", "\n", "*bold*", "<!channel>", "<@U0SALES>",
                              "`", "%00", "\u202e", "x" * 70, "-" * 65, "DC-ATL>DC-DAL"]),
             max_size=6).map("".join),
)


@QUIET
@settings(max_examples=400, deadline=None)
@given(slash_text)
@example("")
@example("#-1")
@example("#" + "9" * 400)
@example("#" + "9" * 5000)
@example("A" * 5000)
@example("DC-ATL > > DC-DAL")
def test_parse_drift_args_never_raises(text):
    result = parse_drift_args(text)
    assert isinstance(result, DriftQuery | Usage)
    if isinstance(result, Usage):
        assert DRIFT_USAGE in result.text and result.blocks()
        assert len(result.text) < 3000  # fits a Slack section
    else:
        assert result.kind in ("summary", "mine", "search", "recommendation")
        if result.kind == "recommendation":  # None: a number past any id (none has it)
            assert result.rec_id is None or 1 <= result.rec_id <= MAX_RECOMMENDATION_ID
            assert result.text.startswith("#")


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(slash_text, st.sampled_from(["#99999999999999999999", "mine", "help",
                                               "SKU-00001", "a b c", "<script>"])))
def test_drift_command_through_the_running_app(stack, text):
    text = text.replace("\r", " ").strip()
    seen = len(stack.slack.ephemeral_for(PLANNER))
    delivery = stack.slack.command(f"/drift {text}", as_user=PLANNER, channel="C0PLANNING")
    assert delivery.status == 200, (text, delivery.status, delivery.body[:300])
    replies = stack.slack.wait_for(lambda: stack.slack.ephemeral_for(PLANNER)[seen:],
                                   timeout=WAIT, message=f"no answer to /drift {text!r}")
    reply = replies[-1]
    assert reply.user != "USLACKBOT", f"Slack showed an error for /drift {text!r}: {reply.text}"
    expected = parse_drift_args(text)
    shown = reply.text + " " + str(reply.blocks)
    if isinstance(expected, Usage):
        assert "How to use" in shown, (text, reply.text)
    else:
        assert "How to use" not in reply.text, (text, reply.text)


@pytest.mark.parametrize("typed", ["#100000000000000000000", "#2147483648"])
def test_drift_for_a_number_past_any_id_says_there_is_no_such_recommendation(stack, typed):
    seen = len(stack.slack.ephemeral_for(PLANNER))
    delivery = stack.slack.command(f"/drift {typed}", as_user=PLANNER, channel="C0PLANNING")
    assert delivery.status == 200
    reply = stack.slack.wait_for(lambda: stack.slack.ephemeral_for(PLANNER)[seen:],
                                 timeout=WAIT, message=f"no answer to /drift {typed}")[-1]
    assert reply.user != "USLACKBOT", reply.text
    assert f"No recommendation {typed}." in str(reply.blocks)


# -- configuration files ------------------------------------------------------------------

def _load(data: bytes) -> list[str] | None:
    """Problems load_config reports for a file holding ``data`` (None when it is valid)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alignbot.yml"
        path.write_bytes(data)
        try:
            load_config(path)
        except ConfigError as exc:
            assert exc.problems, "a ConfigError must say what is wrong"
            return exc.problems
    return None


def _check_shape(problems: list[str] | None) -> None:
    for problem in problems or []:
        assert PROBLEM.match(problem), f"not a `key.path: message` problem: {problem!r}"


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["5m", "every", "#planning", "U0X",
                                                           "S0X", "PT1S", "*/5 * * * *"]))
keys = st.one_of(st.sampled_from(["teams", "routing", "connectors", "slack", "detectors",
                                  "name", "channel", "members", "schedule", "every", "cron",
                                  "settings", "rules", "match", "approvals", "kind", "system",
                                  "default_team", "timezone", "digest", "secrets"]),
                 st.text(max_size=10), st.integers())
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=30)


@QUIET
@settings(max_examples=300, deadline=None)
@given(documents)
def test_random_yaml_config_gives_only_config_errors(doc):
    _check_shape(_load(yaml.safe_dump(doc, allow_unicode=True).encode()))


EXAMPLE = EXAMPLE_CONFIG.read_text(encoding="utf-8")


@QUIET
@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=8))
def test_mutated_example_config_gives_only_config_errors(rng: random.Random, n: int):
    lines = EXAMPLE.splitlines(keepends=True)
    for _ in range(n):
        i = rng.randrange(len(lines))
        op = rng.choice(["drop", "dup", "indent", "dedent", "swap", "chars", "value"])
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip()
        elif op == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "chars":
            line = lines[i]
            k = rng.randrange(len(line) + 1)
            lines[i] = line[:k] + rng.choice([":", "-", "[", "{", "'", '"', "&a", "*a", "!!",
                                              "\t", "?", "#", "|", ">", "%", "@"]) + line[k:]
        elif op == "value" and ":" in lines[i]:
            head = lines[i].split(":", 1)[0]
            lines[i] = head + ": " + rng.choice(["", "null", "-1", "0", "[]", "{}", "1e999",
                                                 "yes", "'x'", "[a, b]", "99999999999999999999",
                                                 "2d", "0s", "-5m"]) + "\n"
        if not lines:
            lines = ["\n"]
    _check_shape(_load("".join(lines).encode()))


def test_example_config_is_valid():
    assert _load(EXAMPLE.encode()) is None


@pytest.mark.parametrize("data", [b"\xff\xfe t\x00e\x00a\x00m\x00s\x00", b"teams: caf\xe9\n"],
                         ids=["utf16", "latin1"])
def test_config_that_is_not_utf8_gives_a_config_error(data):
    _check_shape(_load(data))
