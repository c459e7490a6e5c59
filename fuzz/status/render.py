#!/usr/bin/env python3
"""Render the per-target table of fuzz/STATUS.md from status/runs.tsv
(one line per campaign run, written by campaign.sh): totals per target.

Columns of runs.tsv: date, target, seconds, execs, cov, ft, corpus,
slowest_us, result, and (rows since 2026-12-04) cpu_s. `seconds` is the
requested run time in the older rows and the measured wall time since;
cpu_s is the fuzzer's measured CPU time (user + system). The budget is
10 M executions or 2 CPU hours (7200 s) per target, whichever comes first;
only measured CPU time counts towards the 2 hours."""
import collections, sys
BUDGET_EXECS, BUDGET_CPU_S = 10_000_000, 7200
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1] if len(sys.argv) > 1 else 'status/runs.tsv') if l.strip()]
tot = collections.OrderedDict()
for row in rows:
    date, t, secs, execs, cov, ft, corp, slow, result = row[:9]
    cpu = row[9] if len(row) > 9 else ''
    d = tot.setdefault(t, dict(date=date, secs=0, cpu=0, execs=0, cov='?', ft='?', corp='?', slow=0, results=collections.Counter()))
    d['date'] = date[:10]
    d['secs'] += int(secs)
    d['cpu'] += int(cpu) if cpu.isdigit() else 0
    d['execs'] += int(execs or 0)
    if cov != '?':
        d['cov'], d['ft'], d['corp'] = cov, ft, corp
    try:
        d['slow'] = max(d['slow'], int(slow))
    except ValueError:
        pass
    d['results'][result] += 1
print('| target | last run | run s (wall) | CPU s (measured) | executions | budget | cov (edges) | ft (features) | corpus | slowest input | runs |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
reached = 0
for t, d in sorted(tot.items()):
    slow = f"{d['slow']/1000:.1f} ms" if d['slow'] else '< 1 ms'
    if d['execs'] >= BUDGET_EXECS:
        budget = '**reached** (10 M execs)'
        reached += 1
    elif d['cpu'] >= BUDGET_CPU_S:
        budget = '**reached** (2 CPU h)'
        reached += 1
    else:
        budget = f"{max(d['execs'] / BUDGET_EXECS, d['cpu'] / BUDGET_CPU_S):.0%}"
    results = ', '.join(f"{r} x{n}" if n > 1 else r for r, n in d['results'].items())
    print(f"| `{t}` | {d['date']} | {d['secs']:,} | {d['cpu']:,} | {d['execs']:,} | {budget} | {d['cov']} | {d['ft']} | {d['corp']} | {slow} | {results} |")
print(f"\n{reached} of {len(tot)} targets reached the budget.")
