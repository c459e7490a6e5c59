#!/usr/bin/env python3
"""Render the per-target table of fuzz/STATUS.md from status/runs.tsv
(one line per campaign run, written by campaign.sh): totals per target."""
import collections, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1] if len(sys.argv) > 1 else 'status/runs.tsv') if l.strip()]
tot = collections.OrderedDict()
for date, t, secs, execs, cov, ft, corp, slow, result in rows:
    d = tot.setdefault(t, dict(date=date, secs=0, execs=0, cov='?', ft='?', corp='?', slow=0, results=[]))
    d['date'] = date[:10]
    d['secs'] += int(secs)
    d['execs'] += int(execs or 0)
    d['cov'], d['ft'], d['corp'] = cov, ft, corp
    try:
        d['slow'] = max(d['slow'], int(slow))
    except ValueError:
        pass
    d['results'].append(result)
print('| target | last run | CPU s | executions | cov (edges) | ft (features) | corpus | slowest input | runs |')
print('|---|---|---|---|---|---|---|---|---|')
for t, d in tot.items():
    slow = f"{d['slow']/1000:.1f} ms" if d['slow'] else '< 1 ms'
    print(f"| `{t}` | {d['date']} | {d['secs']} | {d['execs']:,} | {d['cov']} | {d['ft']} | {d['corp']} | {slow} | {', '.join(d['results'])} |")
