#!/usr/bin/env python3
"""Failure burst -> anomaly flag: how long after a steady edge's server dies the agent's API shows the edge's
failure_rate flag. One or more builds, run in turn in each round (issue 18's table; run as root).

Per round and build: a server in its own network namespace (a veth pair, so it is a remote end, attributed at
once), the agent (its default anomaly settings), a client connecting to the server every 5 ms. After a warm-up
long enough for the baseline (5 judged 1 s windows), the server is killed, so connects are refused; the API's
topology is polled every 10 ms until the edge carries a failure_rate flag. The time printed is kill -> flag seen.

Usage: scripts/bench-anomaly.py ROUNDS LABEL=BINARY [LABEL=BINARY...] [--marker MARKER]
  MARKER: write the table into docs/benchmarks.md between <!-- MARKER --> markers (scripts/bench-section.py).
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

NS, VETH_HOST, VETH_NS = 'hs-anom', 'hsanom0', 'hsanom1'
HOST_IP, SERVER_IP, PORT = '10.231.7.1', '10.231.7.2', 8088
WARMUP_S, TIMEOUT_S, PERIOD_S = 8.0, 10.0, 0.005


def sh(cmd, check=True):
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True)


def setup_netns():
    sh(f'ip netns del {NS}', check=False)
    sh(f'ip link del {VETH_HOST}', check=False)
    sh(f'ip netns add {NS}')
    sh(f'ip link add {VETH_HOST} type veth peer name {VETH_NS} netns {NS}')
    sh(f'ip addr add {HOST_IP}/24 dev {VETH_HOST} && ip link set {VETH_HOST} up')
    sh(f'ip netns exec {NS} sh -c "ip addr add {SERVER_IP}/24 dev {VETH_NS} && ip link set {VETH_NS} up && '
       f'ip link set lo up"')


def teardown_netns():
    sh(f'ip link del {VETH_HOST}', check=False)
    sh(f'ip netns del {NS}', check=False)


SERVER = f'''
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{SERVER_IP}", {PORT})); s.listen(512); print("READY", flush=True)
while True:
    c, _ = s.accept(); c.close()
'''


def api_topology(sock_path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(sock_path)
    s.sendall(b'{"method":"topology","params":{}}\n')
    buf = b''
    while not buf.endswith(b'\n'):
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def flagged(reply):
    edges = reply.get('result', reply).get('edges', [])
    return any(e.get('port') == PORT and any(a.get('reason') == 'failure_rate' for a in e.get('anomalies', []))
               for e in edges)


def one_run(binary, tmp):
    sock = os.path.join(tmp, 'agent.sock')
    cfg = os.path.join(tmp, 'agent.yaml')
    with open(cfg, 'w') as f:
        f.write(f'api:\n  socket: {sock}\n')
    agent = subprocess.Popen([binary, 'agent', '--config', cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = subprocess.Popen(['ip', 'netns', 'exec', NS, 'python3', '-c', SERVER], stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    try:
        server.stdout.readline()
        for _ in range(300):
            if os.path.exists(sock):
                try:
                    api_topology(sock)
                    break
                except OSError:
                    pass
            time.sleep(0.1)

        def client():
            while not stop.is_set():
                c = socket.socket()
                try:
                    c.connect((SERVER_IP, PORT))
                except OSError:
                    pass
                c.close()
                time.sleep(PERIOD_S)
        t = threading.Thread(target=client)
        t.start()
        time.sleep(WARMUP_S)
        if flagged(api_topology(sock)):
            raise RuntimeError('the edge is flagged before the server died')
        server.kill()
        server.wait()
        t0 = time.monotonic()
        while time.monotonic() - t0 < TIMEOUT_S:
            if flagged(api_topology(sock)):
                return time.monotonic() - t0
            time.sleep(0.01)
        for e in api_topology(sock).get('result', {}).get('edges', []):
            if e.get('port') == PORT:
                print('not flagged:', json.dumps(e)[:1500], file=sys.stderr)
        return None
    finally:
        stop.set()
        server.kill()
        agent.terminate()
        agent.wait()


def main():
    args = sys.argv[1:]
    marker = None
    if '--marker' in args:
        i = args.index('--marker')
        marker = args[i + 1]
        del args[i:i + 2]
    rounds, builds = int(args[0]), [b.split('=', 1) for b in args[1:]]
    results = {label: [] for label, _ in builds}
    setup_netns()
    try:
        for r in range(1, rounds + 1):
            for label, binary in builds:
                with tempfile.TemporaryDirectory() as tmp:
                    s = one_run(binary, tmp)
                results[label].append(s)
                print(f'round {r} {label}: {"not flagged" if s is None else "%.3f s" % s}', file=sys.stderr)
    finally:
        teardown_netns()
    lines = ['| build | runs | flagged | median | worst | best | every run (s) |', '| --- | --- | --- | --- | --- | --- | --- |']
    for label, _ in builds:
        got = [x for x in results[label] if x is not None]
        fmt = lambda x: '%.2f s' % x
        lines.append('| %s | %d | %d | %s | **%s** | %s | %s |' % (
            label, len(results[label]), len(got), fmt(statistics.median(got)) if got else '-',
            fmt(max(got)) if got else '-', fmt(min(got)) if got else '-',
            ', '.join('-' if x is None else '%.2f' % x for x in results[label])))
    table = '\n'.join(lines)
    print(table)
    if marker:
        rev = sh('git describe --always --dirty', check=False).stdout.strip() or 'unknown'
        text = 'Command: `scripts/bench-anomaly.py %s %s --marker %s` (%s, %s, kernel %s, %d cores)\n\n%s\n' % (
            rounds, ' '.join('%s=%s' % (l, b) for l, b in builds), marker, time.strftime('%Y-%m-%d', time.gmtime()),
            rev, os.uname().release, os.cpu_count(), table)
        subprocess.run(['python3', 'scripts/bench-section.py', marker], input=text, text=True, check=True)


if __name__ == '__main__':
    main()
