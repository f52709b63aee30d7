"""Turns bench/run's raw results into bench/results/latest.json and a markdown table on stdout.

Usage: report.py RESULTS.jsonl VERSIONS.txt CHECK_FAILURES.txt OUT.json STARTED FINISHED GATE_FILE
       GATE_SEEN GATE_WAITED_S RUSTC_WAITS DURATION WARMUP CONNECTIONS RATE PROXY_CPU LOAD_CPU
"""

import json
import sys

(results_path, versions_path, failures_path, out_path, started, finished, gate_file, gate_seen,
 gate_waited, rustc_waits, duration, warmup, conns, rate, proxy_cpu, load_cpu) = sys.argv[1:]

rows = [json.loads(line) for line in open(results_path) if line.strip()]
versions = dict(
    line.rstrip("\n").split("=", 1) for line in open(versions_path) if "=" in line
)
failures = [line.rstrip("\n") for line in open(failures_path) if line.strip()]

GROUPS = {
    "plain": "Plain HTTP/1.1 keep-alive reverse proxy",
    "tls": "TLS 1.3 on the client side (ECDSA P-256 certificate), plain HTTP to the upstream",
    "jwt-es256": "JWT bearer token verified on every request (ES256, the same token each time)",
    "jwt-rs256": "JWT bearer token verified on every request (RS256 2048, the same token each time)",
    "jwt-es256-unique": "JWT ES256, a distinct token on every request (defeats verified-token caches)",
    "ratelimit": "Rate limit per client IP of 1,000,000 req/s: never reached, so the cost of the decision",
    "ratelimit-hit": "Rate limit per client IP of 1000 req/s, far exceeded: the cost of refusing (wrk only)",
    "validate": "POST of a 1 KiB JSON body: OpenAPI contract (20 properties) beside none, ModSecurity + CRS and nginx",
}
# The row a group's other rows are divided by, when not Rampart's default ("rampart").
REFERENCE = {"validate": "rampart-unvalidated"}
# Groups where most answers are meant to be refusals (429): their non-2xx answers are the result,
# not errors, and their table shows the share of them.
REFUSING = {"ratelimit-hit"}

upstream = next((r for r in rows if r["name"] == "upstream-alone"), None)
upstream_p99 = (upstream or {}).get("fixed_rate", {}).get("p99_ms")


def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def print_refusing(grows, ref, ref_rps):
    print(f"| contender | req/s (max) | ÷ {ref['name'] if ref else 'Rampart'} | non-2xx (429) % "
          f"| upstream req/s | proxy CPU µs/req | proxy core busy % | load core busy % "
          f"| upstream conns opened | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in grows:
        if "skipped" in r:
            print(f"| {r['name']} | skipped: {r['skipped']} |||||||||")
            continue
        w = r["wrk"]
        errs = []
        if w["socket_errors"]:
            errs.append(f"{w['socket_errors']} socket errors (wrk)")
        if r.get("clean") is False:
            errs.append(
                f"NOT CLEAN after {r.get('attempts')} attempts (compiler seen: "
                f"{r.get('rustc_ran_during_measurement')}, contender had "
                f"{r.get('contender_share_of_core_pct')}% of its core)"
            )
        share = 100 * w["non_2xx"] / w["requests"] if w["requests"] else None
        # The requests the upstream served during the wrk run, per second: what the limit let by.
        up_rps = r["upstream_requests"] / w["duration_s"] if w["duration_s"] else None
        ratio = w["rps"] / ref_rps if ref_rps else None
        print(
            f"| {r['name']} | {fmt(w['rps'], 0)} | {fmt(ratio)} | {fmt(share, 1)} | {fmt(up_rps, 0)} "
            f"| {fmt(r['proxy_cpu_us_per_req'])} | {fmt(r['proxy_core_busy_pct'], 1)} "
            f"| {fmt(r['load_core_busy_pct'], 1)} | {fmt(r.get('upstream_connections_opened'))} "
            f"| {'; '.join(errs) or 'none'} |"
        )
    print()


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def group_medians(grows):
    """Per contender (in first-seen order), the median of each figure over its measured rounds."""
    names = list(dict.fromkeys(r["name"] for r in grows))
    med = {}
    for name in names:
        rs = [r for r in grows if r["name"] == name and "wrk" in r]
        med[name] = {
            "rounds": len(rs),
            "rounds_clean": sum(1 for r in rs if r.get("clean")),
            "rps": median([r["wrk"]["rps"] for r in rs]),
            "proxy_cpu_us_per_req": median([r["proxy_cpu_us_per_req"] for r in rs]),
            "proxy_cpu_us_per_req_all": [r["proxy_cpu_us_per_req"] for r in rs],
            "p50_ms": median([r.get("fixed_rate", {}).get("p50_ms") for r in rs]),
            "p99_ms": median([r.get("fixed_rate", {}).get("p99_ms") for r in rs]),
            "latency_rate_rps": sorted({r.get("fixed_rate", {}).get("rate_rps") for r in rs} - {None}),
            "wrk_non_2xx": sum(r["wrk"]["non_2xx"] for r in rs),
        }
    return med


def print_medians(group, grows):
    med = group_medians(grows)
    print(f"Medians over the rounds of {group}:\n")
    print(f"| contender | rounds (clean) | req/s (max) | proxy CPU µs/req | (each round) "
          f"| latency at req/s | p50 ms | p99 ms | wrk non-2xx |")
    print("|---|---:|---:|---:|---|---|---:|---:|---:|")
    for name, m in med.items():
        each = ", ".join(fmt(x) for x in m["proxy_cpu_us_per_req_all"])
        rates = ", ".join(fmt(x) for x in m["latency_rate_rps"]) or "-"
        print(f"| {name} | {m['rounds']} ({m['rounds_clean']}) | {fmt(m['rps'], 0)} "
              f"| {fmt(m['proxy_cpu_us_per_req'])} | {each} | {rates} | {fmt(m['p50_ms'], 3)} "
              f"| {fmt(m['p99_ms'], 3)} | {m['wrk_non_2xx']} |")
    print()


out = {
    "started_at": started,
    "finished_at": finished,
    "settings": {
        "duration_s": int(duration), "warmup_s": int(warmup), "connections": int(conns),
        "fixed_rate_rps": int(rate), "proxy_cpu": int(proxy_cpu), "load_cpu": int(load_cpu),
        "wrk": f"wrk -t1 -c{conns} -d{duration}s --latency (after a {warmup}s warm-up)",
        "oha": f"oha -z {duration}s -q {rate} -c {conns} --latency-correction",
    },
    "quiet_machine": {
        "gate_file": gate_file or None,
        "gate_seen": gate_seen == "true",
        "gate_waited_s": int(gate_waited),
        "rustc_waits_10s": int(rustc_waits.split(",")[0]),
        "busy_core_waits_10s": int(rustc_waits.split(",")[1]) if "," in rustc_waits else None,
    },
    "machine": {k: versions.get(k) for k in ("cpu", "nproc", "kernel")},
    "versions": {k: v for k, v in versions.items() if k not in ("cpu", "nproc", "kernel")},
    "check_failures": failures,
    "results": rows,
    "medians": {
        g: group_medians([r for r in rows if r["group"] == g])
        for g in dict.fromkeys(r["group"] for r in rows)
        if any("round" in r for r in rows if r["group"] == g)
    },
}
with open(out_path, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")

print(f"# Rampart benchmark, {started} to {finished}\n")
print(f"Machine: {versions.get('cpu')}, {versions.get('nproc')} cores, kernel {versions.get('kernel')}.")
print(f"Proxy on core {proxy_cpu}; wrk/oha and the upstream (nginx) on core {load_cpu}.")
print(f"Max throughput: wrk -t1 -c{conns}, {duration}s after a {warmup}s warm-up. "
      f"Latency: oha at a fixed {rate} req/s, {conns} connections, {duration}s, latency-corrected.")
if gate_file and gate_seen != "true":
    print(f"NOTE: {gate_file} never appeared; measured while the machine may have been busy.")
print()
for group, title in GROUPS.items():
    grows = [r for r in rows if r["group"] == group]
    if not grows:
        continue
    ref = next(
        (r for r in grows if r["name"] == REFERENCE.get(group, "rampart") and "wrk" in r), None
    ) or next((r for r in grows if r["name"] == "rampart-no-audit" and "wrk" in r), None)
    ref_rps = ref["wrk"]["rps"] if ref else None
    print(f"## {group}: {title}\n")
    if group in REFUSING:
        print_refusing(grows, ref, ref_rps)
        continue
    print(f"| contender | req/s (max) | ÷ {ref['name'] if ref else 'Rampart'} | proxy CPU µs/req "
          f"| proxy core busy % | load core busy % | p50 ms @{rate}/s | p99 ms @{rate}/s "
          f"| p99 added vs upstream alone (ms) | upstream conns opened | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in grows:
        if "skipped" in r:
            print(f"| {r['name']} | skipped: {r['skipped']} ||||||||||")
            continue
        w = r["wrk"]
        fr = r.get("fixed_rate", {})
        errs = []
        if w["non_2xx"]:
            errs.append(f"{w['non_2xx']} non-2xx (wrk)")
        if w["socket_errors"]:
            errs.append(f"{w['socket_errors']} socket errors (wrk)")
        if r.get("clean") is False:
            errs.append(
                f"NOT CLEAN after {r.get('attempts')} attempts (compiler seen: "
                f"{r.get('rustc_ran_during_measurement')}, contender had "
                f"{r.get('contender_share_of_core_pct')}% of its core)"
            )
        if w.get("tokens_wrapped"):
            errs.append("token list wrapped (cache hits possible)")
        codes = {k: v for k, v in fr.get("status_codes", {}).items() if not str(k).startswith("2")}
        if codes:
            errs.append(f"oha statuses {codes}")
        # oha cuts the requests still in flight when its time is up: not an error of the proxy.
        oha_errors = {k: v for k, v in fr.get("errors", {}).items() if k != "aborted due to deadline"}
        if oha_errors:
            errs.append(f"oha errors {oha_errors}")
        if "error" in fr:
            errs.append(f"oha: {fr['error']}")
        if fr.get("rate_rps") not in (None, int(rate)):
            errs.append(f"latency at {fr['rate_rps']} req/s, half its maximum, not {rate}")
        added = (
            fr["p99_ms"] - upstream_p99
            if fr.get("p99_ms") is not None and upstream_p99 is not None and r is not upstream
            else None
        )
        ratio = w["rps"] / ref_rps if ref_rps else None
        label = f"{r['name']} (round {r['round']})" if "round" in r else r["name"]
        print(
            f"| {label} | {fmt(w['rps'], 0)} | {fmt(ratio)} | {fmt(r['proxy_cpu_us_per_req'])} "
            f"| {fmt(r['proxy_core_busy_pct'], 1)} | {fmt(r['load_core_busy_pct'], 1)} "
            f"| {fmt(fr.get('p50_ms'), 3)} | {fmt(fr.get('p99_ms'), 3)} | {fmt(added, 3)} "
            f"| {fmt(r.get('upstream_connections_opened'))} | {'; '.join(errs) or 'none'} |"
        )
    print()
    if any("round" in r for r in grows):
        print_medians(group, grows)
if failures:
    print("Pre-flight check failures:")
    for f in failures:
        print(f"- {f}")
print(f"Raw results: {out_path}")
