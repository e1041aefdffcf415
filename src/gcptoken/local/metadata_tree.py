"""The metadata tree a platform serves, built from what is known about the instance: the same facts
give a VM's tree on Compute Engine, the cluster's subset on GKE and Cloud Run's few entries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gcptoken.local.metadata_platforms import Platform

__all__ = ["InstanceFacts", "build_tree", "cluster_defaults"]


@dataclass(frozen=True)
class InstanceFacts:
    """What the instance says about itself, whatever platform it stands for."""

    project_id: str
    project_number: str
    email: str
    zone: str  # us-central1-a
    name: str
    instance_id: str  # digits: a VM's id
    scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/cloud-platform",)
    attributes: Mapping[str, str] = field(default_factory=dict)
    project_attributes: Mapping[str, str] = field(default_factory=dict)
    universe_domain: str = "googleapis.com"

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]


def cluster_defaults(facts: InstanceFacts) -> dict[str, str]:
    """GKE's cluster attributes when none are set: a regional cluster in the instance's region."""
    uid = hashlib.sha256(f"{facts.project_id}/emulated-cluster".encode()).hexdigest()
    return {"cluster-location": facts.region, "cluster-name": "emulated-cluster", "cluster-uid": uid}


def _number(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _instance_id(platform: Platform, facts: InstanceFacts) -> int | str:
    if platform.serverless_instance:
        # A Cloud Run instance id is a long hex string, not a VM's number (as its logs show it and
        # kelseyhightower/container-instance-metadata-server makes one up).
        return (hashlib.sha512(facts.instance_id.encode()).hexdigest())[:128]
    return _number(facts.instance_id)


def _attributes(platform: Platform, facts: InstanceFacts) -> dict[str, str]:
    if platform.instance_attributes is None:
        return dict(facts.attributes)
    values = {**cluster_defaults(facts), **facts.attributes}
    return {key: values[key] for key in sorted(platform.instance_attributes) if key in values}


def _network_interface(project_number: str) -> dict[str, Any]:
    """A VM's first interface on the default VPC, as GCE lists it (the keys of
    cloud.google.com/compute/docs/metadata/predefined-metadata-keys; Go's metadata.InternalIP and
    ExternalIP read ``ip`` and ``access-configs/0/external-ip``). The external address is from
    TEST-NET-3 (RFC 5737): no real host has it."""
    return {
        "access-configs": {"0": {"external-ip": "203.0.113.10", "type": "ONE_TO_ONE_NAT"}},
        "dns-servers": ["169.254.169.254"],
        "gateway": "10.128.0.1",
        "ip": "10.128.0.2",
        "mac": "42:01:0a:80:00:02",
        "mtu": 1460,
        "network": f"projects/{project_number}/networks/default",
        "subnetmask": "255.255.240.0",
    }


def build_tree(platform: Platform, facts: InstanceFacts) -> dict[str, Any]:
    """Every static value ``platform`` serves for ``facts``, as nested dicts."""
    number = facts.project_number
    account = {"aliases": ["default"], "email": facts.email, "scopes": list(facts.scopes)}
    zone = f"{facts.region}-1" if platform.serverless_instance else facts.zone
    candidates: dict[str, Any] = {
        "instance/attributes/": _attributes(platform, facts),
        "instance/cpu-platform": "Intel Broadwell",
        "instance/description": "",
        "instance/hostname": f"{facts.name}.{facts.zone}.c.{facts.project_id}.internal",
        "instance/id": _instance_id(platform, facts),
        "instance/image": "projects/debian-cloud/global/images/debian-12-bookworm-v20260101",
        "instance/machine-type": f"projects/{number}/machineTypes/e2-medium",
        "instance/maintenance-event": "NONE",
        "instance/name": facts.name,
        "instance/network-interfaces/": {"0": _network_interface(number)},
        "instance/preempted": "FALSE",
        "instance/scheduling/": {"automatic-restart": "TRUE", "on-host-maintenance": "MIGRATE", "preemptible": "FALSE"},
        "instance/region": f"projects/{number}/regions/{facts.region}",
        "instance/service-accounts/": {"default": account, facts.email: account},
        "instance/zone": f"projects/{number}/zones/{zone}",
        "project/attributes/": dict(facts.project_attributes),
        "project/numeric-project-id": _number(number),
        "project/project-id": facts.project_id,
        "universe/universe-domain": facts.universe_domain,
    }
    tree: dict[str, Any] = {}
    for path, value in candidates.items():
        if path not in platform.entries:
            continue
        *parents, leaf = path.rstrip("/").split("/")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return tree
