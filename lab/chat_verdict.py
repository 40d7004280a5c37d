#!/usr/bin/env python3
"""Judge one lab chat run from the two peers' `punch chat --json` stdout.

usage: chat_verdict.py A_OUT A_RC A_SENT_FILE B_OUT B_RC B_SENT_FILE

Each side must exit 0 and must have received exactly the other side's lines, once each, in order.
Prints one line: PASS|FAIL <tab> final path of A <tab> final path of B <tab> detail.
"""
import json
import sys


def load(path):
    events, junk = [], 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    v = json.loads(line)
                except ValueError:
                    junk += 1
                    continue
                if isinstance(v, dict):
                    events.append(v)
                else:
                    junk += 1
    except OSError:
        pass
    return events, junk


def lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [l.rstrip("\n") for l in f if l.rstrip("\n")]
    except OSError:
        return []


def side(name, out, rc, expected):
    events, junk = load(out)
    got = [e.get("text") for e in events if e.get("event") == "message"]
    paths = [e.get("path") for e in events if e.get("event") == "path"]
    errors = [e.get("message") or e.get("reason") for e in events if e.get("event") in ("error",)]
    problems = []
    if rc != 0:
        problems.append(f"{name} exit {rc}" + (" (timeout)" if rc == 124 else ""))
    if got != expected:
        missing = [t for t in expected if t not in got]
        dup = sorted({t for t in got if got.count(t) > 1})
        extra = [t for t in got if t not in expected]
        d = f"{name} got {len(got)}/{len(expected)}"
        if missing:
            d += f" missing {missing}"
        if dup:
            d += f" dup {dup}"
        if extra:
            d += f" extra {extra}"
        if not missing and not dup and not extra:
            d += f" out of order {got}"
        problems.append(d)
    if errors:
        problems.append(f"{name} errors {errors[:2]}")
    if junk:
        problems.append(f"{name} {junk} non-JSON stdout lines")
    path = paths[-1] if paths else "none"
    return path, problems


def main():
    if len(sys.argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    a_out, a_rc, a_sent, b_out, b_rc, b_sent = sys.argv[1:]
    pa, prob_a = side("A", a_out, int(a_rc), lines(b_sent))
    pb, prob_b = side("B", b_out, int(b_rc), lines(a_sent))
    problems = prob_a + prob_b
    # Errors alone (e.g. a punch round that failed before the relay took over) are reported, not judged.
    fatal = [p for p in problems if " errors " not in p]
    verdict = "FAIL" if fatal else "PASS"
    print(f"{verdict}\t{pa}\t{pb}\t{'; '.join(problems) if problems else 'all lines once, in order'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
