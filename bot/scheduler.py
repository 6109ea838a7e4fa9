"""APScheduler jobs with stable ids: polls, outbox drain, Slack sync, sweeps, weekly digests.

Every job coalesces missed runs and never overlaps itself (max_instances=1); ``wake`` runs a
job now instead of at its next tick, e.g. the executor right after an approval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import AlignbotConfig, Schedule

log = logging.getLogger(__name__)
# "skipped: maximum number of running instances reached" is the no-overlap rule working, not a
# problem worth a warning on every tick of a slow job.
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
UTC = timezone.utc
WEEKDAYS = {"mon": "mon", "tue": "tue", "wed": "wed", "thu": "thu", "fri": "fri", "sat": "sat",
            "sun": "sun"}


def trigger_for(schedule: Schedule):  # type: ignore[no-untyped-def]
    if schedule.every is not None:
        return IntervalTrigger(seconds=max(schedule.every.total_seconds(), 1), timezone=UTC)
    return CronTrigger.from_crontab(schedule.cron, timezone=UTC)


class Jobs:
    DRAIN = "outbox-drain"
    SYNC = "slack-sync"
    SWEEP = "sweep"

    def __init__(self) -> None:
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        )

    def add(self, job_id: str, func: Callable[[], object], trigger) -> None:  # type: ignore[no-untyped-def]
        self.scheduler.add_job(_logged(job_id, func), trigger=trigger, id=job_id, name=job_id,
                               replace_existing=True)

    def add_every(self, job_id: str, func: Callable[[], object], seconds: float) -> None:
        self.add(job_id, func, IntervalTrigger(seconds=seconds, timezone=UTC))

    def register_local(self, *, drain: Callable[[], object], sync: Callable[[], object] | None,
                       fast: bool = False) -> None:
        """Jobs every replica runs: all are safe to run concurrently (rows are claimed)."""
        tick = 0.5 if fast else 2.0
        self.add_every(self.DRAIN, drain, tick)
        if sync is not None:
            self.add_every(self.SYNC, sync, tick)

    def register_leader(self, config: AlignbotConfig, *, poll: Callable[[str], object],
                        sweep: Callable[[], object], digest: Callable[[str], object] | None,
                        fast: bool = False, run_now: bool = True) -> None:
        """Jobs exactly one replica runs: polls, sweeps and digests."""
        for conn in config.connectors:
            self.add(f"poll:{conn.name}", lambda n=conn.name: poll(n), trigger_for(conn.schedule))
        self.add_every(self.SWEEP, sweep, 5 if fast else 30)
        if digest is not None:
            for team in config.teams:
                if team.digest.enabled:
                    self.add(f"digest:{team.name}", lambda t=team.name: digest(t), CronTrigger(
                        day_of_week=WEEKDAYS[team.digest.day], hour=team.digest.time.hour,
                        minute=team.digest.time.minute, timezone=team.zone))
        if run_now and self.scheduler.running:
            self.wake(*(f"poll:{c.name}" for c in config.connectors))

    def remove_leader_jobs(self) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.startswith(("poll:", "digest:")) or job.id == self.SWEEP:
                job.remove()

    def register(self, config: AlignbotConfig, *, poll: Callable[[str], object],
                 drain: Callable[[], object], sync: Callable[[], object] | None,
                 sweep: Callable[[], object], digest: Callable[[str], object] | None,
                 fast: bool = False) -> None:
        """Everything on one replica (SQLite, tests)."""
        self.register_local(drain=drain, sync=sync, fast=fast)
        self.register_leader(config, poll=poll, sweep=sweep, digest=digest, fast=fast)

    def start(self, run_polls_now: bool = True) -> None:
        self.scheduler.start()
        if run_polls_now:
            self.wake(*(job.id for job in self.scheduler.get_jobs() if job.id.startswith("poll:")))

    def wake(self, *job_ids: str) -> None:
        for job_id in job_ids:
            try:
                self.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
            except JobLookupError:
                pass

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def ids(self) -> list[str]:
        return sorted(job.id for job in self.scheduler.get_jobs())


def _logged(job_id: str, func: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            func()
        except Exception:  # a failing job must not kill the scheduler; it runs again next tick
            log.exception("job %s failed", job_id)
    return run
