#!/usr/bin/env python3
"""A synthetic busy-node topology (hostscope.topology/v1, as `topology -o json` writes it) and the matching
service catalogue (`--context` JSON), for scripts/bench-generate.sh.

Shape (deterministic for a seed): SERVICES local services (host processes with a cgroup), each listening on a
block of consecutive ports (a server with per-worker ports) reached by a few clients from a catalogued network,
a few internet addresses and one or two other local services over 127.0.0.1; plus outgoing connections to a
shared set of internet addresses on a spread of ports.

Usage: synthetic-topology.py OUT_TOPOLOGY.json OUT_CONTEXT.json [--services N] [--ports N] [--seed N]
"""
import argparse
import json
import random


def end(kind, service, address, ns=""):
    return {"kind": kind, "service": service, "namespace": ns, "pod": "", "address": address}


def edge(client, server, port, connections, proto="tcp", failed=None):
    return {"client": client, "server": server, "port": port, "protocol": proto, "connections": connections,
            "closed": connections, "failed": failed or {}, "resets": 0, "active": 0, "bytes_sent": 100,
            "bytes_received": 200, "latency_us": {"samples": 1, "p50": 1, "p90": 1, "p99": 1}, "srtt_us": 50,
            "retransmits": 0, "first_seen": "2026-12-01T12:00:00.000000000Z",
            "last_seen": "2026-12-01T12:05:00.000000000Z", "anomalies": []}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("topology")
    ap.add_argument("context")
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--ports", type=int, default=60, help="listening ports per service")
    ap.add_argument("--seed", type=int, default=19)
    a = ap.parse_args()
    rng = random.Random(a.seed)

    services, edges = [], []
    office = [f"192.0.2.{i}" for i in range(10, 60)]
    internet = [f"198.51.100.{i}" for i in range(1, 200)] + [f"2001:db8::{i:x}" for i in range(1, 50)]
    for i in range(a.services):
        name = f"svc{i:03d}"
        base = 10000 + i * 200
        ports = list(range(base, base + a.ports))
        services.append({"name": name, "cgroups": [f"/system.slice/{name}.service"], "addresses": [],
                         "ports": ports, "go_module": "", "namespace": "", "workload": "", "exe": f"/usr/bin/{name}"})
        office_clients = rng.sample(office, 4)
        internet_clients = rng.sample(internet, 3)
        local_clients = [f"svc{(i + k) % a.services:03d}" for k in (1, 2)]
        for p in ports:
            for c in office_clients:
                edges.append(edge(end("network", "office", c), end("service", name, "10.0.0.1"), p, rng.randint(1, 50)))
            edges.append(edge(end("external", "external", rng.choice(internet_clients)), end("service", name, "10.0.0.1"), p,
                              rng.randint(1, 50)))
            for c in local_clients:
                edges.append(edge(end("service", c, "127.0.0.1"), end("service", name, "127.0.0.1"), p, rng.randint(1, 50)))
        # Outgoing: a few internet servers on a spread of ports, some only ever refused.
        for _ in range(20):
            p = rng.choice([80, 443, 8080, 8443] + list(range(30000, 30050)))
            failed = {"refused": 3} if rng.random() < 0.1 else None
            edges.append(edge(end("service", name, "10.0.0.1"), end("external", "external", rng.choice(internet)), p,
                              0 if failed else rng.randint(1, 50), failed=failed))
    topo = {"schema": "hostscope.topology/v1", "taken_at": "2026-12-01T12:05:01.000000000Z", "counters": {},
            "nodes": [], "edges": edges}
    ctx = {"services": services, "networks": {"office": ["192.0.2.0/24"]}}
    with open(a.topology, "w") as f:
        json.dump(topo, f)
    with open(a.context, "w") as f:
        json.dump(ctx, f)
    print(f"{len(edges)} edges, {len(services)} services")


if __name__ == "__main__":
    main()
