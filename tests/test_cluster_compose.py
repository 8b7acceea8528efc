"""docker-compose.cluster.yml and ops/clickhouse-cluster/: checked by reading, as there is no Docker here.

The files must parse (YAML, XML); the images are the official ones at one exact version; the
topology agrees everywhere it is written down (remote_servers, each server's macros and hostname,
the Keeper ensemble, the proxy's upstreams, CLICKHOUSE_CLUSTER); every file mounted exists; the
Meterline services are those of docker-compose.yml with CLICKHOUSE_CLUSTER added, and every
variable they set is one Meterline reads.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_COMPOSE = ROOT / "docker-compose.cluster.yml"
BASE_COMPOSE = ROOT / "docker-compose.yml"
CONFIG = ROOT / "ops" / "clickhouse-cluster"
APP_SERVICES = ("migrate", "web", "worker", "beat")
PACKAGES = ("config", "ops", "api", "dashboards", "alerts", "ingest", "ledger", "web", "tenancy")
VERSION = re.compile(r"\d+\.\d+\.\d+\.\d+")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def services() -> dict[str, Any]:
    found: dict[str, Any] = load(CLUSTER_COMPOSE)["services"]
    return found


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → repository file of each bind mount (``./…:/path[:ro]``)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = ROOT / source[2:]
    return found


def xml(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # noqa: S314 - the repository's own files


def image(service: dict[str, Any]) -> tuple[str, str]:
    name, _, tag = str(service["image"]).partition(":")
    return name, tag


def servers() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if image(s)[0] == "clickhouse/clickhouse-server"}


def keepers() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if image(s)[0] == "clickhouse/clickhouse-keeper"}


def test_the_files_parse_and_every_mounted_file_exists() -> None:
    for service in services().values():
        for target, source in mounts(service).items():
            assert source.is_file(), f"{source} (mounted at {target}) is missing"
            if source.suffix == ".xml":
                xml(source)
    assert sorted(p.name for p in CONFIG.glob("*.xml")) == sorted(
        {m.name for s in services().values() for m in mounts(s).values() if m.suffix == ".xml"}
    ), "an XML file under ops/clickhouse-cluster/ is not mounted anywhere"


def test_official_images_pinned_to_one_exact_version() -> None:
    assert len(servers()) == 4
    assert len(keepers()) == 3
    tags = {image(s)[1] for s in [*servers().values(), *keepers().values()]}
    [tag] = tags
    assert VERSION.fullmatch(tag), tag
    single = load(BASE_COMPOSE)["services"]["clickhouse"]
    assert image(single) == ("clickhouse/clickhouse-server", tag), "the same release as docker-compose.yml"


def test_two_shards_of_two_replicas_agree_with_each_servers_macros_and_hostname() -> None:
    cluster_name = load(CLUSTER_COMPOSE)["x-meterline-env"]["CLICKHOUSE_CLUSTER"]
    shards_seen: dict[str, int] = {}
    replicas_seen: set[str] = set()
    for name, service in servers().items():
        files = mounts(service)
        remote = xml(files["/etc/clickhouse-server/config.d/cluster.xml"]).find("remote_servers")
        assert remote is not None
        [cluster] = list(remote)
        assert cluster.tag == cluster_name
        shards = cluster.findall("shard")
        assert [len(s.findall("replica")) for s in shards] == [2, 2]
        for shard in shards:
            assert shard.findtext("internal_replication") == "true"
        layout = [[r.findtext("host") for r in s.findall("replica")] for s in shards]
        [index] = [i for i, hosts in enumerate(layout) if name in hosts]
        assert service["hostname"] == name
        macros = xml(files["/etc/clickhouse-server/config.d/macros.xml"]).find("macros")
        assert macros is not None
        shard_macro, replica_macro = macros.findtext("shard"), macros.findtext("replica")
        assert shard_macro
        assert replica_macro
        assert shards_seen.setdefault(shard_macro, index) == index, "one shard macro per shard"
        assert replica_macro not in replicas_seen
        replicas_seen.add(replica_macro)
        # the inter-server secret comes from the environment the service sets
        secret = cluster.find("secret")
        assert secret is not None
        assert secret.get("from_env") in service["environment"]
    assert len(shards_seen) == 2


def test_keeper_ensemble_of_three_is_what_the_servers_use() -> None:
    zookeeper = xml(CONFIG / "cluster.xml").find("zookeeper")
    assert zookeeper is not None
    client_nodes = {(n.findtext("host"), n.findtext("port")) for n in zookeeper.findall("node")}
    ids: dict[str, str] = {}
    raft: set[tuple[str | None, str | None]] = set()
    for name, service in keepers().items():
        keeper = xml(mounts(service)["/etc/clickhouse-keeper/keeper_config.xml"]).find("keeper_server")
        assert keeper is not None
        server_id = keeper.find("server_id")
        assert server_id is not None
        ids[name] = service["environment"][server_id.get("from_env")]
        raft |= {(s.findtext("id"), s.findtext("hostname")) for s in keeper.iter("server")}
        assert (name, keeper.findtext("tcp_port")) in client_nodes
        assert service["hostname"] == name
    assert sorted(ids.values()) == ["1", "2", "3"]
    assert raft == {(i, n) for n, i in ids.items()}
    assert len(client_nodes) == 3


def test_the_cluster_address_is_a_proxy_over_every_server() -> None:
    env = load(CLUSTER_COMPOSE)["x-meterline-env"]
    url = re.sub(r"\$\{[^}]*\}", "x", env["CLICKHOUSE_URL"])  # as compose interpolates it, roughly
    assert urlparse(url).port == 8123
    host = urlparse(url).hostname
    proxy = services()[str(host)]
    conf = mounts(proxy)["/etc/nginx/nginx.conf"].read_text()
    assert "listen 8123;" in conf
    upstreams = set(re.findall(r"^\s*server (\S+):8123 ", conf, re.MULTILINE))
    assert upstreams == set(servers())
    assert set(proxy["depends_on"]) == set(servers())


def names_meterline_reads() -> set[str]:
    """Environment variables read by the settings (config/env.py helpers), by modules directly, and
    by gunicorn in the image (WEB_CONCURRENCY, set in the Dockerfile)."""
    code = "\n".join(
        p.read_text() for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "tests" not in p.parts
    )
    names = set(re.findall(r"env_\w+\(\s*\"([A-Z][A-Z0-9_]+)\"", code))
    names |= set(re.findall(r"os\.environ\.get\(\"([A-Z][A-Z0-9_]+)\"", code))
    if "WEB_CONCURRENCY=" in (ROOT / "Dockerfile").read_text():
        names.add("WEB_CONCURRENCY")
    return names


def test_meterline_services_are_those_of_docker_compose_yml_pointed_at_the_cluster() -> None:
    base, cluster = load(BASE_COMPOSE), load(CLUSTER_COMPOSE)
    assert cluster["x-meterline-env"] == {**base["x-meterline-env"], "CLICKHOUSE_CLUSTER": "meterline"}
    assert cluster["x-meterline-env"]["CLICKHOUSE_URL"] == base["x-meterline-env"]["CLICKHOUSE_URL"]
    read = names_meterline_reads()
    for name in APP_SERVICES:
        ours, theirs = cluster["services"][name], base["services"][name]
        assert ours.get("command") == theirs.get("command"), name
        assert ours["environment"] == theirs["environment"] | {"CLICKHOUSE_CLUSTER": "meterline"}, name
        unknown = set(ours["environment"]) - read
        assert not unknown, f"{name} sets variables Meterline does not read: {sorted(unknown)}"
    for name in ("postgres", "redis", "nginx"):
        assert cluster["services"][name] == base["services"][name], name
