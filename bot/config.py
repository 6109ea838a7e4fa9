"""alignbot.yml: teams, routing, detector thresholds, connectors and the digest, validated.

One YAML file describes a deployment. Secrets never live in it: the file names environment
variables (``*_env`` keys and ``secrets:`` maps) and the values are read from the environment
when the bot starts. The models here say what each value may be; ``bot.config_check`` adds
what values must agree on and reports every problem with its key path.
"""

from __future__ import annotations

import os
import re
from datetime import time as clock_time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)

from canonical.model import DriftKind
from detectors.settings import DetectorSettings

DEFAULT_CONFIG_PATH = Path("alignbot.yml")
CONFIG_ENV = "ALIGNBOT_CONFIG"

# ISO 4217 codes alignbot can show money in, and how: the symbol written before the amount.
CURRENCY_SYMBOLS: dict[str, str] = {
    "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "CN¥", "INR": "₹", "CAD": "CA$",
    "AUD": "A$", "NZD": "NZ$", "MXN": "MX$", "BRL": "R$", "SGD": "S$", "HKD": "HK$", "KRW": "₩",
    "CHF": "CHF ", "SEK": "SEK ", "NOK": "NOK ", "DKK": "DKK ", "PLN": "PLN ", "ZAR": "ZAR ",
}
# Currencies with no minor unit in everyday use: never shown with decimals.
WHOLE_CURRENCIES = frozenset({"JPY", "KRW"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_FORMS = "a number and a unit: 90s, 30m, 4h, 2d or 1w"
CRON_FORMS = "5 fields, minute hour day month weekday, like '*/15 * * * *' or '0 6 * * mon-fri'"


def _parse_duration(value: Any, handler: ValidatorFunctionWrapHandler) -> timedelta:
    """The short forms people write in YAML ("90s", "30m", "4h", "2d"); a bare number is
    refused, since nobody can tell whether 4 meant seconds or hours."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value} has no unit: write {DURATION_FORMS}")
    try:
        return handler(value)  # a timedelta, or ISO 8601 (PT4H) as pydantic reads it
    except ValidationError:
        raise ValueError(f"{value!r} is not a duration: write {DURATION_FORMS}") from None


Duration = Annotated[timedelta, WrapValidator(_parse_duration)]
EnvVarName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    # A typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class DigestSchedule(_Strict):
    day: Weekday = "mon"
    time: clock_time = clock_time(8, 0)
    enabled: bool = True


class Team(_Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    channel: str = Field(min_length=2, description="Slack channel id (C... or G...)")
    usergroup_id: str | None = Field(default=None, pattern=r"^S[A-Z0-9]+$")
    members: list[str] = Field(default_factory=list, description="Slack user ids (U...)")
    timezone: str = "UTC"
    escalation: str | None = Field(
        default=None, description="who is mentioned when a decision expires: U..., S... or #channel"
    )
    digest: DigestSchedule = Field(default_factory=DigestSchedule)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)") from None
        return value

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        # After a crash the bot finds its own messages with conversations.history, which takes
        # ids only: a #name would post fine and then duplicate on recovery.
        if not re.fullmatch(r"[CG][A-Z0-9]{2,}", value):
            raise ValueError(f"{value!r} is not a Slack channel id: use the id (like C0123ABCD; "
                             "in Slack, the channel's name → About → Channel ID), not its name")
        return value

    @field_validator("members")
    @classmethod
    def _user_ids(cls, value: list[str]) -> list[str]:
        bad = [m for m in value if not re.fullmatch(r"[UW][A-Z0-9]+", m)]
        if bad:
            raise ValueError(f"not Slack user ids: {', '.join(bad)} (they look like U0123ABCD)")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def mention(self) -> str:
        if self.usergroup_id:
            return f"<!subteam^{self.usergroup_id}>"
        return " ".join(f"<@{m}>" for m in self.members)


class RuleMatch(_Strict):
    """Every listed field must match; an empty match catches everything."""

    kind: list[DriftKind] = Field(default_factory=list)
    location: list[str] = Field(default_factory=list)
    region: list[str] = Field(default_factory=list)
    lane: list[str] = Field(default_factory=list)
    carrier: list[str] = Field(default_factory=list)
    sku_class: list[str] = Field(default_factory=list)
    min_severity: Literal["low", "medium", "high", "critical"] | None = None
    min_value: float | None = Field(default=None, ge=0)


class RoutingRule(_Strict):
    name: str
    match: RuleMatch = Field(default_factory=RuleMatch)
    teams: list[str] = Field(min_length=1)
    approvals: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="approvals needed per team; default one from the first team",
    )
    requester_may_approve: bool = True
    deadline: Duration = timedelta(hours=4)
    continue_: bool = Field(default=False, alias="continue")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Routing(_Strict):
    default_team: str
    default_deadline: Duration = timedelta(hours=4)
    regions: dict[str, list[str]] = Field(
        default_factory=dict, description="region name -> locations, for rule matching"
    )
    rules: list[RoutingRule] = Field(default_factory=list)


class Schedule(_Strict):
    """One of ``every`` or ``cron`` (config_check refuses both or neither)."""

    every: Duration | None = None
    cron: str | None = None

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        from apscheduler.triggers.cron import CronTrigger  # the scheduler's own reading of it

        if value is not None:
            try:
                CronTrigger.from_crontab(value, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a cron expression ({exc}): write "
                                 f"{CRON_FORMS}") from None
        return value


class ConnectorConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["rest", "csv", "epcis", "x12", "edifact"]
    system: Literal["planning", "logistics"]
    schedule: Schedule = Field(default_factory=lambda: Schedule(every=timedelta(minutes=5)))
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, EnvVarName] = Field(
        default_factory=dict, description="setting name -> environment variable holding it"
    )
    webhook_secret_env: EnvVarName | None = None
    executes: bool = Field(
        default=True, description="carries out approved actions for its system (first one wins)"
    )
    stale_after: Duration = timedelta(minutes=30)
    timeout: Duration = timedelta(seconds=10)


class ReraiseAfter(_Strict):
    """How long a decided drift stays decided while it does not change materially.

    ``null`` means until it changes materially (or goes away and comes back as a new episode).
    """

    rejected: Duration | None = timedelta(days=7)
    expired: Duration | None = timedelta(days=1)
    executed: Duration | None = None  # also partially executed


class LifecycleConfig(_Strict):
    reraise_after: ReraiseAfter = Field(default_factory=ReraiseAfter)


class SlackConfig(_Strict):
    bot_token_env: EnvVarName = "SLACK_BOT_TOKEN"
    signing_secret_env: EnvVarName = "SLACK_SIGNING_SECRET"
    app_token_env: EnvVarName = "SLACK_APP_TOKEN"
    api_url_env: EnvVarName = "SLACK_API_URL"


class AlignbotConfig(_Strict):
    currency: str = Field(default="USD", description="ISO 4217 code of every money figure shown")
    teams: list[Team] = Field(min_length=1)
    routing: Routing
    detectors: DetectorSettings = Field(default_factory=DetectorSettings)
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    digest: DigestSchedule = Field(default_factory=DigestSchedule)
    database_url_env: EnvVarName = "DATABASE_URL"
    database_url_default: str = "sqlite:///alignbot.db"

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.strip().upper()
        if code not in CURRENCY_SYMBOLS:
            raise ValueError(f"unknown currency {value!r}: use one of "
                             + ", ".join(sorted(CURRENCY_SYMBOLS)) + " (ISO 4217 codes)")
        return code

    def team(self, name: str) -> Team:
        return next(t for t in self.teams if t.name == name)

    def connector(self, name: str) -> ConnectorConfig:
        return next(c for c in self.connectors if c.name == name)


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists one ``path: message`` per issue."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def resolve_path(path: Path | None) -> Path:
    if path is not None:
        return path
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_config(path: Path | None = None) -> AlignbotConfig:
    """Read and check the YAML file; raise ConfigError listing every problem."""
    from bot.config_check import check

    path = resolve_path(path)
    config, problems = check(read_yaml(path))
    if config is None:
        raise ConfigError(str(path), problems)
    return config


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's settings as YAML gives them, unchecked; ConfigError if there are none."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), [f"file not found (set --config or {CONFIG_ENV})"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"byte {exc.start}: not UTF-8 text (save the file as UTF-8)"]
                          ) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file ({exc.strerror or exc})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(str(path), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["(top level): expected a mapping of settings"])
    return raw


def connector_secrets(conn: ConnectorConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The secret values of one connector, read from the environment at the last moment."""
    env = os.environ if environ is None else environ
    missing = [var for var in conn.secrets.values() if not env.get(var)]
    if missing:
        raise ConfigError(f"connector {conn.name}", [f"environment variable {v} is not set"
                                                      for v in missing])
    return {setting: env[var] for setting, var in conn.secrets.items()}


def database_url(config: AlignbotConfig | None = None, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    var = config.database_url_env if config else "DATABASE_URL"
    default = config.database_url_default if config else "sqlite:///alignbot.db"
    return env.get(var) or default
