#!/usr/bin/env python3
"""Runs every PromQL expression of the Grafana dashboard and of docs/metrics.md through a real Prometheus.

promtool has no query syntax check, so this starts `prometheus` on a free loopback port with a temporary TSDB,
backfilled (promtool tsdb create-blocks-from openmetrics) with two nodes' series of a cross-node connection, and
runs each query through /api/v1/query: a syntax or matching error (e.g. many-to-many in a group_left join) is a
failure. It then checks what the node graph's edges query answers: a client pod on node A dialling a pod address
on node B is one edge named by both pods (issue 20), counted once, on all nodes and on B alone.

No root needed; the temporary directory and the Prometheus process are removed whatever happens.
Usage: check-dashboard-promql.py <source dir>
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

NOW = int(time.time()) // 60 * 60  # whole minutes: the samples below end just before it
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "${datasource}": "prometheus"}


def dashboard_exprs(path):
    exprs = []

    def walk(j):
        if isinstance(j, dict):
            if isinstance(j.get("expr"), str):
                exprs.append(j["expr"])
            for v in j.values():
                walk(v)
        elif isinstance(j, list):
            for v in j:
                walk(v)

    with open(path) as f:
        walk(json.load(f))
    return exprs  # template variables hold Grafana's label_values(), not PromQL


def doc_exprs(path):
    with open(path) as f:
        return re.findall(r"```promql\n(.*?)```", f.read(), re.S)


def openmetrics():
    """Two nodes' exposition over the last hour, one sample a minute (docs/metrics.md label sets)."""
    edge = ("src_service", "src_namespace", "src_address", "dst_service", "dst_namespace", "dst_address", "dst_port")
    counters = [
        # node A: web (10.244.1.5) dials cart's pod address on node B, and an external address.
        ("A", ("web", "shop", "", "cluster-pods", "", "10.244.2.6", "80")),
        ("A", ("web", "shop", "", "93.184.216.34", "", "93.184.216.34", "443")),
        # node B: the same connections seen by cart, and a client no agent knows (no endpoint_info).
        ("B", ("cluster-pods", "", "10.244.1.5", "cart", "shop", "", "80")),
        ("B", ("cluster-pods", "", "10.244.9.9", "cart", "shop", "", "80")),
    ]
    endpoints = [("A", "10.244.1.5", "web", "shop", "web", "web-7d9f-x1"), ("A", "192.168.0.1", "", "", "", ""),
                 ("B", "10.244.2.6", "cart", "shop", "cart", "cart-5c8b-y2"), ("B", "192.168.0.2", "", "", "", "")]
    times = [NOW - 3600 + 60 * i for i in range(60)]
    out = ["# TYPE hostscope_connections_opened counter"]
    for node, labels in counters:
        ls = ",".join(f'{k}="{v}"' for k, v in zip(edge, labels)) + f',node="{node}"'
        out += [f"hostscope_connections_opened_total{{{ls}}} {i} {t}" for i, t in enumerate(times)]
    out.append("# TYPE hostscope_endpoint_info gauge")
    for node, address, service, ns, workload, pod in endpoints:
        ls = (f'address="{address}",service="{service}",namespace="{ns}",workload="{workload}",pod="{pod}",'
              f'node="{node}"')
        out += [f"hostscope_endpoint_info{{{ls}}} 1 {t}" for t in times]
    out.append("# EOF")
    return "\n".join(out) + "\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base, expr):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": NOW})
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # 400/422: the body says why
        return json.load(e)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "."
    dashboard = os.path.join(src, "packaging/grafana/hostscope-dashboard.json")
    exprs = [("dashboard", e) for e in dashboard_exprs(dashboard)]
    exprs += [("docs/metrics.md", e) for e in doc_exprs(os.path.join(src, "docs/metrics.md"))]
    failures = []
    with tempfile.TemporaryDirectory(prefix="hs-promql-") as tmp:
        data = os.path.join(tmp, "data")
        with open(os.path.join(tmp, "in.om"), "w") as f:
            f.write(openmetrics())
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global: {}\nscrape_configs: []\n")
        r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", os.path.join(tmp, "in.om"), data],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"promtool tsdb create-blocks-from openmetrics failed: {r.stdout}{r.stderr}")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(os.path.join(tmp, "prometheus.log"), "w") as log:
            prom = subprocess.Popen(["prometheus", "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                                     "--storage.tsdb.path=" + data, f"--web.listen-address=127.0.0.1:{port}"],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            for _ in range(300):  # at most ~30 s for it to load the blocks
                if prom.poll() is not None:
                    sys.exit("prometheus exited:\n" + open(os.path.join(tmp, "prometheus.log")).read())
                try:
                    with urllib.request.urlopen(base + "/-/ready", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(0.1)
            else:
                sys.exit("prometheus not ready:\n" + open(os.path.join(tmp, "prometheus.log")).read())

            def attempt(expr, node=".*"):
                text = expr.replace("$node", node)
                for k, v in GRAFANA_VARIABLES.items():
                    text = text.replace(k, v)
                r = query(base, text)
                if r.get("status") != "success":
                    return None, f"{r.get('errorType')}: {r.get('error')}\n  {text}"
                return r["data"]["result"], None

            def run(where, expr, node=".*"):
                result, error = attempt(expr, node)
                if error:
                    failures.append(f"{where}: {error}")
                return result

            # The check really rejects what is wrong, so its silence below means something: a syntax error, and a
            # matching error that only shows on data (so the backfill is there).
            if attempt("sum by (x) (rate(hostscope_connections_opened_total[5m])")[1] is None:
                failures.append("self-check: an unbalanced parenthesis was accepted")
            if attempt("hostscope_connections_opened_total * on(dst_port) group_left "
                       "hostscope_connections_opened_total")[1] is None:
                failures.append("self-check: a many-to-many join was accepted: is the backfilled data there?")
            backfilled = {"hostscope_connections_opened_total", "hostscope_endpoint_info"}
            for where, expr in exprs:
                result = run(where, expr)
                # Queries of the backfilled series only must answer something: an empty join is a wrong join.
                if result == [] and set(re.findall(r"hostscope_[a-z_]+", expr)) <= backfilled:
                    failures.append(f"{where}: no result on the backfilled data\n  {expr}")

            edges_expr = next(e for w, e in exprs if w == "dashboard" and 'label_join' in e and '"source"' in e)
            for node, want_ids in ((".*", {"shop/web -> shop/cart", "shop/web -> /93.184.216.34",
                                            "/cluster-pods -> shop/cart"}),
                                   ("B", {"shop/web -> shop/cart", "/cluster-pods -> shop/cart"})):
                result = run(f"edges query, node=~{node}", edges_expr, node) or []
                got = {s["metric"].get("id"): float(s["value"][1]) for s in result}
                if set(got) != want_ids:
                    failures.append(f"edges query, node=~{node}: ids {sorted(got)}, want {sorted(want_ids)}")
                    continue
                # Each series counts the same connections: the pod-to-pod edge, seen by both nodes, counts once.
                counts = set(got.values())
                if len(counts) != 1:
                    failures.append(f"edges query, node=~{node}: counts differ (double counted?): {got}")
            nodes_expr = next(e for w, e in exprs if w == "dashboard" and 'label_join' in e and '"source"' not in e)
            ids = {s["metric"].get("id") for s in run("nodes query", nodes_expr) or []}
            if ids != {"shop/web", "shop/cart", "/93.184.216.34", "/cluster-pods"}:
                failures.append(f"nodes query: ids {sorted(ids)}")
        finally:
            os.killpg(prom.pid, signal.SIGTERM)
            prom.wait()
    if failures:
        sys.exit("\n".join(failures))
    print(f"{len(exprs)} PromQL expressions ran on a real Prometheus; the node graph names cross-node ends")


if __name__ == "__main__":
    main()
