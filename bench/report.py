#!/usr/bin/env python3
"""Renders bench/out/<run>/report.md from the raw files that bench/proxy.sh saved.

    python3 bench/report.py bench/out/<run> ROUNDS
"""
import os, re, statistics, sys

out, rounds = sys.argv[1], int(sys.argv[2])
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}

def parse(path):
    text = open(path).read()
    d = {"file": os.path.basename(path), "cmd": text.splitlines()[0][2:]}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    d["rps"] = float(m.group(1)) if m else float("nan")
    for q in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % q, text, re.M)
        d["p" + q] = float(m.group(1)) * UNIT[m.group(2)] if m else float("nan")
    m = re.search(r"(\d+) requests in", text)
    d["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    d["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    d["sock"] = tuple(map(int, m.groups())) if m else (0, 0, 0, 0)
    for k in ("server", "client", "backend", "other"):
        m = re.search(r"%s_cpu_seconds: (-?[\d.]+)" % k, text)
        d[k] = float(m.group(1)) if m else float("nan")
    d["cpu"] = d["server"]
    # CPU microseconds per request: of the server alone, and of server + backend (the whole
    # serving side; for the backend target the two are the same process)
    d["us_req"] = d["server"] * 1e6 / d["requests"] if d["requests"] else float("nan")
    d["us_req_all"] = (d["server"] + d["backend"]) * 1e6 / d["requests"] if d["requests"] else float("nan")
    return d

env = {}
for line in open(os.path.join(out, "memory.env")):
    for kv in line.split():
        k, v = kv.split("=")
        env[k] = int(v)

targets = ["backend", "nginx", "oauthgate"]
both = os.environ.get("LOGS") == "both"
label = {"backend": "backend direct (http)",
         "nginx": "nginx TLS proxy" + (" (access_log on)" if both else ""),
         "oauthgate": "oauthgate (RUST_LOG=%s)" % ("info" if both else "warn")}
runs = {t: [parse(os.path.join(out, f"round{r}-{t}.txt")) for r in range(1, rounds + 1)] for t in targets}
med = {t: {k: statistics.median(x[k] for x in runs[t]) for k in ("rps", "p50", "p99", "cpu", "us_req", "us_req_all")} for t in targets}
info = parse(os.path.join(out, "info-oauthgate.txt"))

def errs(ds):
    n = sum(d["non2xx"] for d in ds)
    s = [sum(d["sock"][i] for d in ds) for i in range(4)]
    return f"{n} / {s[0]},{s[1]},{s[2]},{s[3]}"

print(f"## Results ({rounds} rounds, medians; raw output in {out})\n")
print("| target | median req/s | median p50 (ms) | median p99 (ms) | req/s vs nginx | server CPU s per run | server CPU µs/req | server+backend CPU µs/req | non-2xx / socket errors c,r,w,t (all rounds) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for t in targets:
    m = med[t]
    print(f"| {label[t]} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {m['rps']/med['nginx']['rps']:.2f} | {m['cpu']:.2f} | {m['us_req']:.1f} | {m['us_req_all']:.1f} | {errs(runs[t])} |")
print(f"| oauthgate (RUST_LOG=info), 1 run | {info['rps']:.0f} | {info['p50']:.3f} | {info['p99']:.3f} | {info['rps']/med['nginx']['rps']:.2f} | {info['cpu']:.2f} | {info['us_req']:.1f} | {info['us_req_all']:.1f} | {errs([info])} |")
print()
print("All columns except the last are medians over the rounds (the info row is a single run).\n")
per_round = ", ".join("%.2f" % (a["rps"] / b["rps"]) for a, b in zip(runs["oauthgate"], runs["nginx"]))
print(f"**oauthgate / nginx (median req/s): {med['oauthgate']['rps']/med['nginx']['rps']:.3f}**; per round: {per_round}  ")
print(f"The RUST_LOG=info process wrote {env['INFO_LOG_LINES']} log lines ({env['INFO_LOG_BYTES']/1048576:.1f} MiB) to a file "
      f"over its lifetime (warm-up + measured run{'s' if env['DISCARDED'] else ''}).\n")

print("### Per round: req/s, p50 ms, p99 ms; CPU seconds server / backend / wrk / other\n")
print("| round | " + " | ".join(targets) + " |")
print("|---|" + "---|" * len(targets))
fmt = lambda d: (f"{d['rps']:.0f}, {d['p50']:.3f}, {d['p99']:.3f}; "
                 f"{d['server']:.2f} / {d['backend']:.2f} / {d['client']:.2f} / {d['other']:.2f}")
for r in range(rounds):
    print(f"| {r+1} | " + " | ".join(fmt(runs[t][r]) for t in targets) + " |")
print(f"| info | | | {fmt(info)} |")
worst = max(d["other"] for t in targets for d in runs[t])
print(f"\nLargest CPU used by other processes during one kept run: {worst:.2f} s "
      f"(out of {os.cpu_count()} cores x the run duration). "
      f"Runs discarded and repeated because other processes were busy: {env['DISCARDED']}.\n")

MB = lambda kb: kb / 1024
conns = open(os.path.join(out, "quiet-oauthgate.txt")).read().split()[1]
print(f"### Memory at {conns} quiet keep-alive connections (bench/hold.py: one request each, then silence)\n")
print(f"- oauthgate (fresh process): idle VmRSS {MB(env['Q_RSS0']):.1f} MiB; holding them VmRSS **{MB(env['Q_RSS1']):.1f} MiB**, "
      f"VmHWM (the peak, opening included) **{MB(env['Q_HWM1']):.1f} MiB**; "
      f"{(env['Q_RSS1'] - env['Q_RSS0']) / int(conns):.1f} KiB per connection.")
print(f"- nginx TLS proxy (after the throughput rounds): RSS sum {MB(env['QN_RSS0']):.1f} -> **{MB(env['QN_RSS1']):.1f} MiB**, "
      f"PSS sum {MB(env['QN_PSS0']):.1f} -> {MB(env['QN_PSS1']):.1f} MiB; "
      f"{(env['QN_RSS1'] - env['QN_RSS0']) / int(conns):.1f} KiB RSS per connection.\n")

mg = parse(os.path.join(out, "mem-oauthgate.txt"))
mn = parse(os.path.join(out, "mem-nginx.txt"))
print(f"### Memory at {mg['cmd'].split()[2][2:]} busy keep-alive connections (wrk)\n")
print(f"- oauthgate (fresh process, RUST_LOG=warn, {env['G_THREADS']} threads at idle): idle VmRSS {MB(env['G_RSS0']):.1f} MiB (VmHWM {MB(env['G_HWM0']):.1f} MiB); "
      f"after the run VmHWM **{MB(env['G_HWM1']):.1f} MiB** (highest sampled VmRSS {MB(env['G_RSS_MAX']):.1f} MiB, VmRSS after {MB(env['G_RSS1']):.1f} MiB). "
      f"wrk: {mg['rps']:.0f} req/s, p99 {mg['p99']:.1f} ms, non-2xx/socket errors {errs([mg])}.")
print(f"- nginx TLS proxy (master + {env['N_WORKERS']} workers, after the throughput rounds): before RSS sum {MB(env['N_RSS0']):.1f} MiB / PSS sum {MB(env['N_PSS0']):.1f} MiB; "
      f"highest sampled during the run RSS sum **{MB(env['N_RSS_MAX']):.1f} MiB** / PSS sum {MB(env['N_PSS_MAX']):.1f} MiB. "
      f"wrk: {mn['rps']:.0f} req/s, p99 {mn['p99']:.1f} ms, non-2xx/socket errors {errs([mn])}.")
