"""One running demo stack per database backend, shared by the end-to-end tests of a module."""

from __future__ import annotations

import os

import pytest

from bot.demo import DemoStack


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def stack(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'alignbot.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"e2e_{os.getpid()}_{request.module.__name__[-12:]}")
    with DemoStack(fast=True, database_url=url) as demo:
        demo.step()  # a demand spike, delayed shipments and a carrier capacity cut
        yield demo
