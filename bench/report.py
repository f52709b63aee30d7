"""Turns bench/run's raw results into a results JSON and markdown tables on stdout.

Usage: report.py RESULTS.jsonl VERSIONS.txt CHECK_FAILURES.txt OUT.json STARTED FINISHED GATE_FILE
       GATE_SEEN GATE_WAITED_S RUSTC_WAITS DURATION WARMUP CONNECTIONS RATE PROXY_CPU LOAD_CPU
       report.py --render RESULTS.json
The second form prints the tables of a results file written before, older ones included (their rows
without a round number count as round 1, 2, ... of their contender, in file order).

Every figure is the median over the rounds of its contender, with the spread (min-max) when there
was more than one round; each group also gets Rampart's ratios to the peers in it (nginx, HAProxy,
Envoy, ModSecurity), on the medians.
"""

import json
import sys

GROUPS = {
    "plain": "Plain HTTP/1.1 keep-alive reverse proxy",
    "tls": "TLS 1.3 on the client side (ECDSA P-256 certificate), plain HTTP to the upstream",
    "jwt-es256": "JWT bearer token verified on every request (ES256, the same token each time)",
    "jwt-rs256": "JWT bearer token verified on every request (RS256 2048, the same token each time)",
    "jwt-es256-unique": "JWT ES256, a distinct token on every request (defeats verified-token caches)",
    "ratelimit": "Rate limit per client IP of 1,000,000 req/s: never reached, so the cost of the decision",
    "ratelimit-hit": "Rate limit per client IP of 1000 req/s, far exceeded: the cost of refusing (wrk only)",
    "validate": "POST of a 1 KiB JSON body: OpenAPI contract (20 properties) beside none, ModSecurity + CRS and nginx",
    "fullchain": "The full default chain on one route (JWT ES256, per-principal rate limit, CORS, security "
                 "headers, OpenAPI validation of the 1 KiB JSON POST, audit) beside plain proxies of the same POST",
    "idle": "Idle keep-alive client connections: RSS of the proxy idle, with them held, and after they closed",
    "keyspray": "A spray of distinct client addresses (X-Forwarded-For from a trusted proxy) at a per-IP rate limit",
    "twocore-plain": "Plain proxy on two cores (two workers; the load generator shares the cores)",
    "twocore-fullchain": "Full chain on two cores (two workers; the load generator shares the cores)",
}
# Groups where most answers are meant to be refusals (429): their non-2xx answers are the result,
# not errors, and their table shows the share of them.
REFUSING = {"ratelimit-hit"}
# The one-core group each two-core group is compared with.
TWOCORE = {"twocore-plain": "plain", "twocore-fullchain": "fullchain"}
# Targets of issue 10 printed beside the figures.
FULLCHAIN_TARGET = 1.5
# Target 5 is worded at half of Rampart's own saturation: a run at a fixed rate is reported against
# it only when the rate was within this band of half Rampart's maximum (bench/run BENCH_RATE=half).
HALF_RATE_BAND = (0.4, 0.6)
IDLE_TARGET_MIB_PER_10K = 64


def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def spread(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else (None, None)


def stat(xs):
    """Median, min and max of the figures of the rounds (None where absent)."""
    lo, hi = spread(xs)
    return {"median": median(xs), "min": lo, "max": hi, "n": sum(1 for x in xs if x is not None)}


def cell(s, digits=2):
    """`median [min–max]`, or the median alone for one round."""
    if s["median"] is None:
        return "-"
    if s["n"] <= 1 or s["min"] == s["max"]:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} [{fmt(s['min'], digits)}–{fmt(s['max'], digits)}]"


def number_rounds(rows):
    """Rows of older files carry no round (validate's did): number them per contender in file order."""
    seen = {}
    for r in rows:
        key = (r["group"], r["name"])
        seen[key] = seen.get(key, 0) + 1
        if "round" not in r or not r["round"]:
            r["round"] = seen[key]
    return rows


def is_peer(name):
    return not name.startswith("rampart") and name != "upstream-alone"


def row_notes(r, rate):
    """What went wrong or differs in one measured round."""
    w = r["wrk"]
    fr = r.get("fixed_rate", {})
    errs = []
    if w["non_2xx"] and r["group"] not in REFUSING:
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
    if rate is not None and fr.get("rate_rps") not in (None, int(rate)):
        errs.append(f"latency at {fr['rate_rps']} req/s (half its maximum)")
    return errs


def p99_added(r, upstream):
    """A row's p99 over the upstream alone's at the same rate: the same round's when it ran at the
    row's rate (the plain group), else the upstream's median when every round of it ran at that
    rate; none when the upstream never ran at the row's rate (another group's, at half of its own
    Rampart's maximum)."""
    fr = r.get("fixed_rate", {})
    if fr.get("p99_ms") is None or r["name"] == "upstream-alone":
        return None
    same = upstream["by_round"].get(r.get("round"))
    if same is not None and same[0] == fr.get("rate_rps") and same[1] is not None:
        return fr["p99_ms"] - same[1]
    if upstream["median"] is None or upstream["rates"] != {fr.get("rate_rps")}:
        return None
    return fr["p99_ms"] - upstream["median"]


def throughput_medians(grows, upstream):
    """Per contender (first-seen order): each figure's median and spread over its rounds."""
    med = {}
    for name in dict.fromkeys(r["name"] for r in grows):
        rs = [r for r in grows if r["name"] == name and "wrk" in r]
        skipped = [r for r in grows if r["name"] == name and "skipped" in r]
        p99 = [r.get("fixed_rate", {}).get("p99_ms") for r in rs]
        added = [p99_added(r, upstream) for r in rs]
        rps, cpu = stat([r["wrk"]["rps"] for r in rs]), stat([r["proxy_cpu_us_per_req"] for r in rs])
        cpu_fixed = stat([r.get("fixed_rate", {}).get("proxy_cpu_us_per_req") for r in rs])
        up_rps = [r["upstream_requests"] / r["wrk"]["duration_s"]
                  if r.get("upstream_requests") is not None and r["wrk"]["duration_s"] else None for r in rs]
        non2xx_pct = [100 * r["wrk"]["non_2xx"] / r["wrk"]["requests"] if r["wrk"]["requests"] else None
                      for r in rs]
        med[name] = {
            "rounds": len(rs),
            "rounds_clean": sum(1 for r in rs if r.get("clean")),
            "rounds_skipped": len(skipped),
            # The flat fields older consumers read (as the validate group wrote them before).
            "rps": rps["median"],
            "proxy_cpu_us_per_req": cpu["median"],
            "proxy_cpu_us_per_req_all": [r["proxy_cpu_us_per_req"] for r in rs],
            "p50_ms": median([r.get("fixed_rate", {}).get("p50_ms") for r in rs]),
            "p99_ms": median(p99),
            "latency_rate_rps": sorted({r.get("fixed_rate", {}).get("rate_rps") for r in rs} - {None}),
            # The fixed rate as a share of the row's own maximum in the same round.
            "latency_rate_of_max": stat([r["fixed_rate"]["rate_rps"] / r["wrk"]["rps"]
                                         if r.get("fixed_rate", {}).get("rate_rps") and r["wrk"]["rps"]
                                         else None for r in rs]),
            "wrk_non_2xx": sum(r["wrk"]["non_2xx"] for r in rs),
            # Median and spread of each figure.
            "stats": {
                "rps": rps,
                "proxy_cpu_us_per_req": cpu,
                "proxy_cpu_us_per_req_fixed_rate": cpu_fixed,
                # Of which in user space: the proxy's own code (older results have none).
                "proxy_user_us_per_req": stat([r.get("proxy_user_us_per_req") for r in rs]),
                "proxy_user_us_per_req_fixed_rate":
                    stat([r.get("fixed_rate", {}).get("proxy_user_us_per_req") for r in rs]),
                "p50_ms": stat([r.get("fixed_rate", {}).get("p50_ms") for r in rs]),
                "p99_ms": stat(p99),
                "p99_added_ms": stat(added),
                "proxy_core_busy_pct": stat([r.get("proxy_core_busy_pct") for r in rs]),
                "load_core_busy_pct": stat([r.get("load_core_busy_pct") for r in rs]),
                "upstream_rps": stat(up_rps),
                "non_2xx_pct": stat(non2xx_pct),
                "upstream_connections_opened": stat([r.get("upstream_connections_opened") for r in rs]),
            },
            "notes": [f"r{r['round']}: {e}" for r in rs for e in row_notes(r, None)]
                     + [f"r{r['round']}: skipped: {r['skipped']}" for r in skipped],
        }
    return med


def ratio_of(a, b):
    return round(a / b, 3) if a is not None and b else None


def ratios(med):
    """Each Rampart row against each peer of the group, on the medians: CPU µs/req and req/s."""
    out = {}
    peers = [n for n in med if is_peer(n) and med[n]["rps"]]
    for name, m in med.items():
        if not name.startswith("rampart") or not m["rps"]:
            continue
        out[name] = {}
        for p in peers:
            pc, pr = med[p]["proxy_cpu_us_per_req"], med[p]["rps"]
            out[name][p] = {
                "cpu_us_per_req": round(m["proxy_cpu_us_per_req"] / pc, 3)
                if pc and m["proxy_cpu_us_per_req"] is not None else None,
                "rps": round(m["rps"] / pr, 3) if pr else None,
                "cpu_us_per_req_fixed_rate": ratio_of(
                    m["stats"]["proxy_cpu_us_per_req_fixed_rate"]["median"],
                    med[p]["stats"]["proxy_cpu_us_per_req_fixed_rate"]["median"]),
            }
    return out


def memory_medians(grows, fields):
    med = {}
    for name in dict.fromkeys(r["name"] for r in grows):
        rs = [r for r in grows if r["name"] == name and "skipped" not in r]
        med[name] = {"rounds": len(rs), "rounds_skipped": sum(1 for r in grows if r["name"] == name) - len(rs)}
        for f in fields:
            med[name][f] = stat([r.get(f) for r in rs])
        med[name]["each_round"] = rs
    return med


IDLE_FIELDS = ["connections_alive", "connections_failed", "rss_idle_kib", "rss_held_kib",
               "rss_after_close_kib", "added_mib", "added_later_mib", "added_bytes_per_conn",
               "kept_after_close_mib"]
SPRAY_FIELDS = ["requests", "rps", "non_2xx", "rss_before_kib", "rss_after_kib", "rss_max_kib",
                "added_mib", "added_mib_second_half"]


def summarize(rows):
    """The medians (with spreads) and ratios of every group, as stored in the results JSON."""
    up_rows = [r for r in rows if r["name"] == "upstream-alone" and "wrk" in r]
    upstream_p99 = median([r.get("fixed_rate", {}).get("p99_ms") for r in up_rows])
    upstream = {"median": upstream_p99,
                "rates": {r.get("fixed_rate", {}).get("rate_rps") for r in up_rows},
                "by_round": {r.get("round"): (r.get("fixed_rate", {}).get("rate_rps"),
                                              r.get("fixed_rate", {}).get("p99_ms")) for r in up_rows}}
    medians, rat = {}, {}
    for g in dict.fromkeys(r["group"] for r in rows):
        grows = [r for r in rows if r["group"] == g]
        if g == "idle":
            medians[g] = memory_medians(grows, IDLE_FIELDS)
        elif g == "keyspray":
            medians[g] = memory_medians(grows, SPRAY_FIELDS)
        else:
            medians[g] = throughput_medians(grows, upstream)
            rat[g] = ratios(medians[g])
    return medians, rat, upstream_p99


def kib_mib(s):
    return {k: (v / 1024 if isinstance(v, (int, float)) and k != "n" else v) for k, v in s.items()}


def user_part(s):
    """The user-space share after a CPU cell (" (user N)"), when the results have it."""
    return f" (user {fmt(s['median'])})" if s.get("median") is not None else ""


def rate_label(rate):
    """The fixed rate as the tables' headers name it."""
    return f"{rate}/s" if isinstance(rate, int) else "half of Rampart's max"


def print_latency_target(med):
    """Target 5 of issue 10: p99 added over the upstream alone at most nginx's, at half of
    Rampart's saturation; said only of a run whose rate was near that half."""
    r, n = med.get("rampart"), med.get("nginx")
    if not r or not n or r["stats"]["p99_added_ms"]["median"] is None:
        return
    share = r["latency_rate_of_max"]["median"]
    ra, na = r["stats"]["p99_added_ms"]["median"], n["stats"]["p99_added_ms"]["median"]
    if share is None:
        return
    at = f"at {fmt(share * 100, 0)} % of Rampart's maximum"
    if na is None or n["latency_rate_rps"] != r["latency_rate_rps"]:
        print(f"Target (issue 10, 5): not measured ({at}; nginx not at the same rates).\n")
        return
    if not HALF_RATE_BAND[0] <= share <= HALF_RATE_BAND[1]:
        print(f"Target (issue 10, 5): not measured as worded ({at}, not half; BENCH_RATE=half "
              f"measures it); p99 added {fmt(ra, 3)} against nginx's {fmt(na, 3)} ms.\n")
        return
    verdict = "met" if ra <= na else "NOT met"
    print(f"Target (issue 10, 5): p99 added over the upstream alone {at}: Rampart {fmt(ra, 3)} ms "
          f"against nginx's {fmt(na, 3)} ms (medians), {verdict}.\n")


def print_throughput(group, med, rat, settings):
    rate = settings.get("fixed_rate_rps")
    refusing = group in REFUSING
    if refusing:
        print("| contender | rounds (clean) | req/s (max) | non-2xx (429) % | upstream req/s "
              "| proxy CPU µs/req | proxy core busy % | load core busy % | notes |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    else:
        print(f"| contender | rounds (clean) | req/s (max) | proxy CPU µs/req (of which user) "
              f"| proxy CPU µs/req @{rate_label(rate)} (of which user) "
              f"| p50 ms @{rate_label(rate)} | p99 ms @{rate_label(rate)} | p99 added vs upstream alone (ms) "
              f"| proxy core busy % "
              f"| upstream conns opened | notes |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, m in med.items():
        s = m["stats"]
        notes = list(m["notes"])
        if not refusing and any(x != rate for x in m["latency_rate_rps"]):
            notes.append("latency at " + ", ".join(fmt(x) for x in m["latency_rate_rps"]) + " req/s")
        note = "; ".join(notes) or "none"
        if m["rounds"] == 0:
            print(f"| {name} | 0 | {note} |||||||")
            continue
        rounds = f"{m['rounds']} ({m['rounds_clean']})"
        if refusing:
            print(f"| {name} | {rounds} | {cell(s['rps'], 0)} | {cell(s['non_2xx_pct'], 1)} "
                  f"| {cell(s['upstream_rps'], 0)} | {cell(s['proxy_cpu_us_per_req'])} "
                  f"| {cell(s['proxy_core_busy_pct'], 1)} | {cell(s['load_core_busy_pct'], 1)} | {note} |")
        else:
            print(f"| {name} | {rounds} | {cell(s['rps'], 0)} | {cell(s['proxy_cpu_us_per_req'])}"
                  f"{user_part(s.get('proxy_user_us_per_req', {}))} "
                  f"| {cell(s['proxy_cpu_us_per_req_fixed_rate'])}"
                  f"{user_part(s.get('proxy_user_us_per_req_fixed_rate', {}))} | {cell(s['p50_ms'], 3)} | {cell(s['p99_ms'], 3)} | {cell(s['p99_added_ms'], 3)} "
                  f"| {cell(s['proxy_core_busy_pct'], 1)} | {cell(s['upstream_connections_opened'], 0)} "
                  f"| {note} |")
    print()
    if rat:
        peers = list(dict.fromkeys(p for v in rat.values() for p in v))
        if peers:
            print("Rampart ÷ peer, on the medians (CPU µs/request, at each one's maximum and at the fixed "
                  "rate: lower is better for Rampart below 1; req/s: higher is better above 1):\n")
            print("| Rampart row | " + " | ".join(f"CPU ÷ {p} | CPU @{rate_label(rate)} ÷ {p} | req/s ÷ {p}"
                                                for p in peers) + " |")
            print("|---|" + "---:|---:|---:|" * len(peers))
            for name, v in rat.items():
                cells = " | ".join(f"{fmt(v.get(p, {}).get('cpu_us_per_req'))} "
                                   f"| {fmt(v.get(p, {}).get('cpu_us_per_req_fixed_rate'))} "
                                   f"| {fmt(v.get(p, {}).get('rps'))}"
                                   for p in peers)
                print(f"| {name} | {cells} |")
            print()
    if group == "plain":
        print_latency_target(med)
    if group == "fullchain":
        r = rat.get("rampart-fullchain", {}).get("nginx", {}).get("cpu_us_per_req")
        if r is not None:
            verdict = "met" if r <= FULLCHAIN_TARGET else "NOT met"
            fixed = rat.get("rampart-fullchain", {}).get("nginx", {}).get("cpu_us_per_req_fixed_rate")
            print(f"Target (issue 10, 4): the full chain at most {FULLCHAIN_TARGET} x nginx's plain proxy "
                  f"in CPU µs/request: {fmt(r)} x, {verdict} (at the fixed rate: {fmt(fixed)} x).\n")


def print_idle(med, settings):
    print("| contender | rounds | connections alive (failed) | RSS idle MiB | RSS with them held MiB "
          "| added MiB | added 10 s later MiB | bytes per connection | kept after they closed MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in med.items():
        if m["rounds"] == 0:
            print(f"| {name} | 0 (skipped) ||||||||")
            continue
        print(f"| {name} | {m['rounds']} | {cell(m['connections_alive'], 0)} ({cell(m['connections_failed'], 0)}) "
              f"| {cell(kib_mib(m['rss_idle_kib']), 1)} | {cell(kib_mib(m['rss_held_kib']), 1)} "
              f"| {cell(m['added_mib'], 1)} | {cell(m['added_later_mib'], 1)} "
              f"| {cell(m['added_bytes_per_conn'], 0)} | {cell(m['kept_after_close_mib'], 1)} |")
    print()
    m = med.get("rampart")
    if m and m["rounds"]:
        wanted = m["each_round"][0].get("connections_wanted", 10000)
        target = IDLE_TARGET_MIB_PER_10K * wanted / 10000
        # Held means held at both readings, in every round: the larger of the two, at its worst.
        samples = [max(v for v in (r.get("added_mib"), r.get("added_later_mib")) if v is not None)
                   for r in m["each_round"] if r.get("added_mib") is not None]
        added = max(samples) if samples else None
        verdict = "met" if added is not None and added <= target else "NOT met"
        print(f"Target (issue 10, 6): {fmt(wanted)} idle connections in at most {fmt(target, 0)} MiB over the "
              f"idle gateway: Rampart added at most {fmt(added, 1)} MiB (the larger reading of the "
              f"worst round), {verdict}.\n")


def print_spray(med):
    print("| contender | rounds | requests | req/s | non-2xx | RSS before MiB | RSS after MiB | RSS max MiB "
          "| added MiB | added in the spray's second half MiB | one address after the spray |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, m in med.items():
        if m["rounds"] == 0:
            print(f"| {name} | 0 (skipped) ||||||||||")
            continue
        after = "; ".join(
            f"r{r['round']}: " + ", ".join(f"{k} x{v}" for k, v in r.get("single_key_after", {}).items())
            + (" (refused over its limit)" if r.get("single_key_refused") else " (NOT refused)")
            for r in m["each_round"])
        print(f"| {name} | {m['rounds']} | {cell(m['requests'], 0)} | {cell(m['rps'], 0)} | {cell(m['non_2xx'], 0)} "
              f"| {cell(kib_mib(m['rss_before_kib']), 1)} | {cell(kib_mib(m['rss_after_kib']), 1)} "
              f"| {cell(kib_mib(m['rss_max_kib']), 1)} | {cell(m['added_mib'], 1)} "
              f"| {cell(m['added_mib_second_half'], 1)} | {after} |")
    print()
    m = med.get("rampart")
    if m and m["rounds"]:
        r0 = m["each_round"][0]
        print(f"Rampart tracks at most {fmt(r0.get('max_tracked_keys'))} keys per limit; "
              f"{fmt(r0.get('keys_wanted'))} distinct addresses were sent, one request each. A bounded "
              f"limiter stops growing once the bound is reached: the second half of the spray added "
              f"{fmt(m['added_mib_second_half']['median'], 1)} MiB.\n")


def print_scaling(group, medians):
    one = medians.get(TWOCORE[group])
    two = medians[group]
    print(f"Two cores beside one ({TWOCORE[group]} group of this run; medians):\n")
    if not one:
        print(f"(the {TWOCORE[group]} group was not in this run: no one-core figures to compare with)\n")
        return
    print("| contender | req/s, 1 core | req/s, 2 cores | × | CPU µs/req, 1 core | CPU µs/req, 2 cores |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in two.items():
        o = one.get(name, {})
        x = m["rps"] / o["rps"] if m.get("rps") and o.get("rps") else None
        print(f"| {name} | {fmt(o.get('rps'), 0)} | {fmt(m.get('rps'), 0)} | {fmt(x)} "
              f"| {fmt(o.get('proxy_cpu_us_per_req'))} | {fmt(m.get('proxy_cpu_us_per_req'))} |")
    print()
    print("This machine has two cores only: on two, the proxy shares them with the load generator "
          "(wrk, two threads) and the upstream, so the two-core throughput is a floor of what two "
          "dedicated cores give, not a scaling curve.\n")


def fixed_rate_words(rate):
    if isinstance(rate, int):
        return f"a fixed {rate} req/s"
    return ("a fixed rate per group round, half the maximum of the round's first Rampart row "
            "(the same for every contender that reaches 1.1 times it)")


def render(out):
    rows = number_rounds(out["results"])
    settings = out.get("settings", {})
    versions = dict(out.get("versions", {}))
    machine = out.get("machine", {})
    medians, rat, upstream_p99 = summarize(rows)
    print(f"# Rampart benchmark, {out.get('started_at')} to {out.get('finished_at')}\n")
    print(f"Machine: {machine.get('cpu')}, {machine.get('nproc')} cores, kernel {machine.get('kernel')}. "
          f"Rampart: {versions.get('rampart')} ({versions.get('rampart_source')}).")
    if versions.get("rampart_base"):
        print(f"rampart-base rows (the baseline): {versions['rampart_base']}.")
    print(f"Proxy on core {settings.get('proxy_cpu')}; wrk/oha and the upstream (nginx) on core "
          f"{settings.get('load_cpu')} (twocore groups: proxy and load on both).")
    print(f"Max throughput: wrk -c{settings.get('connections')}, {settings.get('duration_s')}s after a "
          f"{settings.get('warmup_s')}s warm-up. Latency: oha at {fixed_rate_words(settings.get('fixed_rate_rps'))}, "
          f"latency-corrected. Rounds: {settings.get('rounds', 'one per contender, validate: see rows')}; "
          f"each cell is the median [min–max] over the rounds.")
    q = out.get("quiet_machine", {})
    if q.get("gate_file") and not q.get("gate_seen"):
        print(f"NOTE: {q['gate_file']} never appeared; measured while the machine may have been busy.")
    print()
    order = list(GROUPS) + [g for g in medians if g not in GROUPS]
    for group in order:
        if group not in medians:
            continue
        print(f"## {group}: {GROUPS.get(group, '')}\n")
        if group == "idle":
            print_idle(medians[group], settings)
        elif group == "keyspray":
            print_spray(medians[group])
        else:
            print_throughput(group, medians[group], rat.get(group, {}), settings)
            if group in TWOCORE:
                print_scaling(group, medians)
    failures = out.get("check_failures", [])
    if failures:
        print("Pre-flight check failures:")
        for f in failures:
            print(f"- {f}")
    return medians, rat


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        with open(sys.argv[2]) as f:
            render(json.load(f))
        return
    (results_path, versions_path, failures_path, out_path, started, finished, gate_file, gate_seen,
     gate_waited, rustc_waits, duration, warmup, conns, rate, proxy_cpu, load_cpu, *rest) = sys.argv[1:]
    rounds = int(rest[0]) if rest else 1
    rows = number_rounds([json.loads(line) for line in open(results_path) if line.strip()])
    versions = dict(line.rstrip("\n").split("=", 1) for line in open(versions_path) if "=" in line)
    failures = [line.rstrip("\n") for line in open(failures_path) if line.strip()]
    medians, rat, _ = summarize(rows)
    for g in medians.values():
        for m in g.values():
            m.pop("each_round", None)
    out = {
        "started_at": started,
        "finished_at": finished,
        "settings": {
            "duration_s": int(duration), "warmup_s": int(warmup), "connections": int(conns),
            "fixed_rate_rps": int(rate) if rate.isdigit() else rate, "proxy_cpu": int(proxy_cpu), "load_cpu": int(load_cpu),
            "rounds": rounds,
            "wrk": f"wrk -t1 -c{conns} -d{duration}s --latency (after a {warmup}s warm-up; "
                   f"twocore groups: -t2, on both cores)",
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
        "medians": medians,
        "ratios": rat,
    }
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    render(out)
    print(f"Raw results: {out_path}")


if __name__ == "__main__":
    main()
