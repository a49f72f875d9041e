#!/usr/bin/env python3
"""Synthetic cluster series for the cluster-view benchmark (scripts/bench-cluster.sh), in OpenMetrics for
`promtool tsdb create-blocks-from openmetrics`.

NODES nodes with PODS pods each (one service per pod, address 10.(64+n/256).(n%256).(p+2)), and cross-node edges
observed by both agents, the way hostscope exports them with `topology.network_ends: address`: the client's node
writes `svc -> network:cluster-pods@addr`, the server's node `network:cluster-pods@addr -> svc`. EDGES is the
number of series each node exports per family on average (half client side, half server side). A tenth of the edges
also have failed connections. Samples at now-62m, now-30m and now-1m, so a 1h window has a start and an end.

Usage: cluster-openmetrics.py NODES EDGES_PER_NODE PODS_PER_NODE NOW_S > out.om
"""
import sys

nodes, per_node, pods, now = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
half = per_node // 2  # client-side edges a node starts
ports_needed = -(-half // (pods * pods))  # distinct (client pod, server pod, port) per node pair slot


def addr(n, p):
    return f"10.{64 + n // 256}.{n % 256}.{p + 2}"


def svc(n, p):
    return f"app-{n}-{p}"


edges = []  # (client node, client pod, server node, server pod, port)
for c in range(nodes):
    for j in range(half):
        cp = j % pods
        s = (c + 1 + j % (nodes - 1)) % nodes
        sp = (j // pods) % pods
        port = 8000 + j // (pods * pods)
        edges.append((c, cp, s, sp, port))

FAMILIES = [
    ("hostscope_connections_opened_total", 1.0),
    ("hostscope_connections_closed_total", 1.0),
    ("hostscope_connection_resets_total", 0.01),
    ("hostscope_connection_sent_bytes_total", 800.0),
    ("hostscope_connection_received_bytes_total", 2400.0),
    ("hostscope_connection_retransmits_total", 0.02),
]
out = sys.stdout
times = [(now - 62 * 60, 0), (now - 30 * 60, 1), (now - 60, 2)]
for ts, step in times:
    for n in range(nodes):
        out.write(f'hostscope_build_info{{node="node-{n}",version="bench"}} 1 {ts}\n')
        for p in range(pods):
            out.write(f'hostscope_endpoint_info{{address="{addr(n, p)}",service="{svc(n, p)}",namespace="ns-{p}",'
                      f'workload="{svc(n, p)}",pod="{svc(n, p)}-0",node="node-{n}"}} 1 {ts}\n')
    for i, (c, cp, s, sp, port) in enumerate(edges):
        opened = (i % 97 + 1) * (step + 1) * 10
        client = (f'src_service="{svc(c, cp)}",src_namespace="ns-{cp}",dst_service="cluster-pods",'
                  f'dst_address="{addr(s, sp)}",dst_port="{port}",node="node-{c}"')
        server = (f'src_service="cluster-pods",src_address="{addr(c, cp)}",dst_service="{svc(s, sp)}",'
                  f'dst_namespace="ns-{sp}",dst_port="{port}",node="node-{s}"')
        for labels in (client, server):
            for fam, scale in FAMILIES:
                out.write(f"{fam}{{{labels}}} {int(opened * scale)} {ts}\n")
            out.write(f"hostscope_connections_active{{{labels}}} {i % 5} {ts}\n")
            if i % 10 == 0:
                out.write(f'hostscope_connections_failed_total{{{labels},reason="refused"}} {step + 1} {ts}\n')
out.write("# EOF\n")
