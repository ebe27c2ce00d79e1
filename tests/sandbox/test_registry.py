"""The sandbox Registry over real HTTP: the wire behaviour of mesh.md §1 and its test hooks."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
import jwt
import pytest

from sandbox.testing import MeshHandle
from tests.sandbox.conftest import bearer, wait_for

ROW_KEYS = [
    "id", "name", "fqdn", "ip", "role", "env", "version", "cost_hour",
    "cpu", "mem", "disk", "last_seen", "status",
]  # fmt: skip
FULL_ROW = {
    "id": "droplet-12",
    "name": "chat-orchestrator",
    "fqdn": "drop12.local",
    "ip": "127.0.0.1",
    "role": "chat_orchestrator",
    "env": "dev",
    "version": "1.0.0",
    "cost_hour": 0.0,
}


def keyed(mesh: MeshHandle) -> dict[str, str]:
    return {"X-Registry-Key": mesh.registry_key}


def rows(http: httpx2.Client, mesh: MeshHandle) -> dict[str, dict[str, object]]:
    listing = http.get(f"{mesh.registry_url}/registry/droplets", headers=keyed(mesh)).json()
    return {row["id"]: row for row in listing}


@pytest.fixture
def bare(start: Callable[..., MeshHandle]) -> MeshHandle:
    return start(seed=False)


def test_open_endpoints(bare: MeshHandle, http: httpx2.Client) -> None:
    url = bare.registry_url
    assert http.get(f"{url}/health").json() == {"status": "ok"}
    assert http.get(f"{url}/capabilities").json()["features"] == [
        "registry",
        "airtable_sync",
        "orchestrator_forward",
    ]
    assert set(http.get(f"{url}/state").json()) == {"cpu", "mem", "uptime_sec"}
    assert http.get(f"{url}/dependencies").json() == {"connected": []}
    assert http.get(f"{url}/version").json() == {"build": "local", "commit": "", "time": ""}
    assert "droplet_uptime_seconds" in http.get(f"{url}/metrics").text


def test_registry_key_required(bare: MeshHandle, http: httpx2.Client) -> None:
    calls = [
        ("POST", "/registry/register"),
        ("POST", "/registry/heartbeat"),
        ("GET", "/registry/droplets"),
        ("GET", "/dashboard"),
    ]
    for method, path in calls:
        for headers in ({}, {"X-Registry-Key": "wrong-key"}):
            response = http.request(
                method, f"{bare.registry_url}{path}", json={"id": "droplet-12"}, headers=headers
            )
            assert response.status_code == 401, (method, path, headers)
            assert response.json() == {"detail": "unauthorized"}


def test_register_heartbeat_and_list(bare: MeshHandle, http: httpx2.Client) -> None:
    url = bare.registry_url
    response = http.post(f"{url}/registry/register", json=FULL_ROW, headers=keyed(bare))
    assert (response.status_code, response.json()) == (201, {"id": "droplet-12"})
    beat = {"id": "droplet-12", "status": "active", "cpu": 12.5, "mem": 40.1, "disk": 55}
    response = http.post(f"{url}/registry/heartbeat", json=beat, headers=keyed(bare))
    assert (response.status_code, response.json()) == (200, {"status": "ok"})

    [row] = http.get(f"{url}/registry/droplets", headers=keyed(bare)).json()
    assert list(row) == ROW_KEYS
    assert {k: row[k] for k in FULL_ROW} == FULL_ROW
    assert (row["cpu"], row["mem"], row["disk"], row["status"]) == (12.5, 40.1, 55.0, "healthy")
    assert isinstance(row["last_seen"], int)
    assert abs(row["last_seen"] - time.time()) < 5

    dashboard = http.get(f"{url}/dashboard", headers=keyed(bare)).json()
    assert dashboard == {
        "summary": {"total": 1, "healthy": 1, "down": 0, "cost_hour_total": 0.0},
        "droplets": [row],
    }
    assert http.get(f"{url}/dependencies").json() == {"connected": ["drop12.local"]}


def test_register_id_rules(bare: MeshHandle, http: httpx2.Client) -> None:
    url = f"{bare.registry_url}/registry/register"
    response = http.post(url, json={"name": "nobody"}, headers=keyed(bare))
    assert (response.status_code, response.json()) == (400, {"detail": "id or fqdn required"})
    response = http.post(url, json={"fqdn": "drop99.local"}, headers=keyed(bare))
    assert (response.status_code, response.json()) == (201, {"id": "drop99.local"})
    response = http.post(url, json={"id": "droplet-98", "fqdn": "x.local"}, headers=keyed(bare))
    assert response.json() == {"id": "droplet-98"}
    assert set(rows(http, bare)) == {"drop99.local", "droplet-98"}


def test_register_overwrites_omitted_fields_with_null(
    bare: MeshHandle, http: httpx2.Client
) -> None:
    url = bare.registry_url
    http.post(f"{url}/registry/register", json=FULL_ROW | {"cost_hour": 0.5}, headers=keyed(bare))
    http.post(f"{url}/registry/register", json={"id": "droplet-12"}, headers=keyed(bare))
    row = rows(http, bare)["droplet-12"]
    assert {k: row[k] for k in ("name", "fqdn", "ip", "role", "env", "version")} == dict.fromkeys(
        ("name", "fqdn", "ip", "role", "env", "version")
    )
    assert row["cost_hour"] == 0.0
    assert (row["cpu"], row["mem"], row["disk"]) == (None, None, None)


def test_heartbeat_unknown_and_clamping(bare: MeshHandle, http: httpx2.Client) -> None:
    url = bare.registry_url
    response = http.post(
        f"{url}/registry/heartbeat", json={"id": "droplet-99"}, headers=keyed(bare)
    )
    assert (response.status_code, response.json()) == (404, {"detail": "unknown droplet"})
    response = http.post(f"{url}/registry/heartbeat", json={}, headers=keyed(bare))
    assert response.status_code == 404

    http.post(f"{url}/registry/register", json=FULL_ROW, headers=keyed(bare))
    beat = {"id": "droplet-12", "cpu": 250, "mem": -4}
    assert http.post(f"{url}/registry/heartbeat", json=beat, headers=keyed(bare)).status_code == 200
    row = rows(http, bare)["droplet-12"]
    assert (row["cpu"], row["mem"], row["disk"]) == (100.0, 0.0, 0.0)


def test_rows_go_down_after_stale_after(
    start: Callable[..., MeshHandle], http: httpx2.Client
) -> None:
    mesh = start(seed=False, stale_after=0.6)
    url = mesh.registry_url
    http.post(f"{url}/registry/register", json=FULL_ROW, headers=keyed(mesh))
    assert rows(http, mesh)["droplet-12"]["status"] == "healthy"
    wait_for(lambda: rows(http, mesh)["droplet-12"]["status"] == "down", timeout=5)
    summary = http.get(f"{url}/dashboard", headers=keyed(mesh)).json()["summary"]
    assert (summary["healthy"], summary["down"]) == (0, 1)
    http.post(f"{url}/registry/heartbeat", json={"id": "droplet-12"}, headers=keyed(mesh))
    assert rows(http, mesh)["droplet-12"]["status"] == "healthy"


def test_seed_rows_and_the_stale_one(start: Callable[..., MeshHandle], http: httpx2.Client) -> None:
    mesh = start(stale_after=1.5)
    seeded = rows(http, mesh)
    assert list(seeded) == [f"droplet-{n}" for n in (1, 2, 10, 14, 16, 18)]
    assert seeded["droplet-14"]["name"] == "visibility-deck"
    assert all(row["status"] == "healthy" for row in seeded.values())

    # droplet-16 never heartbeats again; the others keep themselves alive.
    wait_for(lambda: rows(http, mesh)["droplet-16"]["status"] == "down", timeout=5)
    time.sleep(0.5)
    assert [k for k, r in rows(http, mesh).items() if r["status"] == "down"] == ["droplet-16"]

    hook = f"{mesh.registry_url}/_sandbox/droplets/droplet-14/stop-heartbeats"
    assert http.post(hook).json() == {"id": "droplet-14", "heartbeats": "stopped"}
    wait_for(lambda: rows(http, mesh)["droplet-14"]["status"] == "down", timeout=5)
    assert (
        http.post(f"{mesh.registry_url}/_sandbox/droplets/droplet-99/stop-heartbeats").status_code
        == 404
    )


def test_public_registry_issues_no_tokens(bare: MeshHandle, http: httpx2.Client) -> None:
    url = bare.registry_url
    for path in ("/auth/public-key", "/.well-known/jwks.json"):
        response = http.get(f"{url}{path}")
        assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})
    response = http.post(f"{url}/auth/token", params={"droplet_id": "12"}, headers=keyed(bare))
    assert response.status_code == 404


def test_deployed_variant_tokens(start: Callable[..., MeshHandle], http: httpx2.Client) -> None:
    mesh = start(seed=False, deployed_registry=True)
    assert mesh.registry_public_key_path is not None
    url = mesh.registry_url
    response = http.post(f"{url}/auth/token", params={"droplet_id": "12"})
    assert (response.status_code, response.json()) == (401, {"detail": "unauthorized"})

    response = http.post(f"{url}/auth/token", params={"droplet_id": "12"}, headers=keyed(mesh))
    assert response.status_code == 200
    token = response.json()["token"]
    published = http.get(f"{url}/.well-known/jwks.json").json()["public_key"]
    assert published.encode() == mesh.registry_public_key_path.read_bytes()
    claims = jwt.decode(
        token,
        published,
        algorithms=["RS256"],
        audience="fullpotential.droplets",
        issuer="registry.fullpotential.ai",
    )
    assert claims["sub"] == "12"
    assert claims["role"] == "droplet"
    assert claims["scope"] == ["registry:heartbeat", "registry:register"]
    assert 86000 < claims["exp"] - claims["iat"] <= 86400

    # The Orchestrator trusts its own key and rejects any token with an `aud` claim.
    rejected = http.get(f"{mesh.orchestrator_url}/droplets", headers=bearer(token))
    assert rejected.json() == {"detail": "Could not validate credentials"}


def test_fault_modes(bare: MeshHandle, http: httpx2.Client) -> None:
    url = bare.registry_url
    fault = f"{url}/_sandbox/fault"

    assert http.post(fault, json={"mode": "error500"}).json() == {"mode": "error500", "delay": 0.0}
    response = http.get(f"{url}/health")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert http.get(fault).json()["mode"] == "error500"  # the control plane is never faulted

    http.post(fault, json={"mode": "garbage"})
    response = http.get(f"{url}/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        response.json()

    http.post(fault, json={"mode": "drop"})
    with pytest.raises(httpx2.RemoteProtocolError):
        http.get(f"{url}/health")

    assert http.post(fault, json={"mode": "slow", "delay": 0.4}).json()["delay"] == 0.4
    began = time.monotonic()
    assert http.get(f"{url}/health").json() == {"status": "ok"}
    assert time.monotonic() - began >= 0.4

    http.post(fault, json={"mode": "none"})
    assert http.get(f"{url}/health").json() == {"status": "ok"}
    assert http.post(fault, json={"mode": "explode"}).status_code == 422


def test_restart_on_the_same_port_keeps_rows(bare: MeshHandle, http: httpx2.Client) -> None:
    url = bare.registry_url
    http.post(f"{url}/registry/register", json=FULL_ROW, headers=keyed(bare))
    bare.stop_registry()
    with pytest.raises(httpx2.ConnectError):
        http.get(f"{url}/health")
    bare.start_registry()
    assert bare.registry_url == url
    assert list(rows(http, bare)) == ["droplet-12"]
