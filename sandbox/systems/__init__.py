"""Sandbox planning system and TMS: real HTTP services over one seeded supply network.

``start_sandboxes(seed=7)`` serves both on 127.0.0.1; POST ``/scenario/step`` on either injects
the next drift (a demand spike, delayed shipments, a carrier capacity cut). With
``story_seconds`` the world plays the demo's story instead, one beat after another once
``world.start_story()`` is called (see ``STORY``).
"""

from __future__ import annotations

from datetime import datetime

from sandbox.serving import BackgroundServer
from sandbox.systems._service import SandboxService
from sandbox.systems._world import CARRIERS, DCS, PLANTS, STORY, World
from sandbox.systems.planning import planning_service
from sandbox.systems.tms import tms_service

__all__ = ["CARRIERS", "DCS", "PLANTS", "STORY", "SandboxService", "World", "planning_service",
           "start_sandboxes", "tms_service"]


def start_sandboxes(seed: int = 7, auto_step_seconds: float | None = None, *,
                    now: datetime | None = None, n_skus: int = 300, checks_from: bool = True,
                    story_seconds: float | None = None,
                    ) -> tuple[BackgroundServer, BackgroundServer]:
    """Start (planning, tms) on free loopback ports; both share one world and scenario clock.

    Each returned server has ``.service`` (the SandboxService) and ``.world`` for inspection.
    ``checks_from=False``: apply actions without checking their ``from_*`` values.
    ``story_seconds``: play the demo's story, a beat every so many seconds once started.
    """
    world = World(seed=seed, now=now, n_skus=n_skus, auto_step_seconds=auto_step_seconds,
                  checks_from=checks_from, story_seconds=story_seconds)
    servers = []
    for service in (planning_service(world), tms_service(world)):
        server = BackgroundServer(service.app)
        server.service = service  # type: ignore[attr-defined]
        server.world = world  # type: ignore[attr-defined]
        servers.append(server.start())
    return servers[0], servers[1]
