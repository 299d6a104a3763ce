"""``jobs.generate --executor dask`` listens on this machine only and serves no dashboard unless asked
(issue 12: it served one on 0.0.0.0:8787)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import psutil
import pytest

from jobs.generate import local_cluster


def _listening() -> set[tuple[str, int]]:
    return {tuple(conn.laddr) for conn in psutil.Process(os.getpid()).net_connections() if conn.status == psutil.CONN_LISTEN}


def _status(port: int, path: str) -> int:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_generation_cluster_binds_localhost_and_has_no_dashboard_unless_asked():
    before = _listening()  # sockets of other tests in this process, if any
    with local_cluster(workers=1) as cluster:
        opened = _listening() - before
        assert opened and {ip for ip, _ in opened} == {"127.0.0.1"}  # scheduler, HTTP, nanny; no 0.0.0.0 or ::
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        port = cluster.scheduler.http_server.port
        assert port != 8787 and _status(port, "/status") == 404 and _status(port, "/health") == 200
    with local_cluster(workers=1, dashboard_port=0) as cluster:
        assert {ip for ip, _ in _listening() - before} == {"127.0.0.1"}
        assert _status(cluster.scheduler.http_server.port, "/status") == 200  # asked for: served, on localhost
