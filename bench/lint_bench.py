#!/usr/bin/env python3
"""Lint benchmark driver (stdlib only), called by bench/lint_vs_squawk.sh.

  generate OUT [N]     write an N-statement (default 10,000) idempotent playbook to OUT
  speed ...            time repair.lint and squawk (and `pgrepair lint`) on that file
  corpus ...           lint each case of destructive_corpus.sql with both tools
  pgbench-summary      stdin `MODE SIDE TPS` lines -> the TPS table

The database is reached with psql through the libpq environment (PGHOST, PGPORT, PGUSER,
PGDATABASE) that the shell script sets up.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HEADER = """\
-- repair: {id}
-- title: {title}
-- environments: staging
-- lock-timeout: 2s
-- statement-timeout: 5min
"""

PRELUDE = [
    "CREATE SCHEMA IF NOT EXISTS app;",
    "CREATE TABLE IF NOT EXISTS app.settings (\n"
    "    key   text PRIMARY KEY,\n"
    "    value text NOT NULL\n"
    ");",
]

# One "table's worth" of the DDL a real repair playbook carries; {i} numbers the table.
GROUP = [
    "CREATE TABLE IF NOT EXISTS app.t{i} (\n"
    "    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "    name       text        NOT NULL,\n"
    "    created_at timestamptz NOT NULL DEFAULT now()\n"
    ");",
    "ALTER TABLE app.t{i} ADD COLUMN IF NOT EXISTS status text;",
    "ALTER TABLE app.t{i} ADD COLUMN IF NOT EXISTS parent_id bigint REFERENCES app.t{i} (id);",
    "CREATE INDEX IF NOT EXISTS t{i}_name_idx ON app.t{i} (name);",
    "CREATE UNIQUE INDEX IF NOT EXISTS t{i}_active_uq ON app.t{i} (name) WHERE status = 'active';",
    "COMMENT ON TABLE app.t{i} IS 'Table {i}, recreated by the repair playbook';",
    "COMMENT ON COLUMN app.t{i}.status IS 'active, archived or NULL';",
    "CREATE OR REPLACE VIEW app.t{i}_active AS\n"
    "    SELECT id, name, created_at FROM app.t{i} WHERE status = 'active';",
    "CREATE OR REPLACE FUNCTION app.t{i}_count() RETURNS bigint\n"
    "    LANGUAGE sql STABLE\n"
    "    AS $$ SELECT count(*) FROM app.t{i} $$;",
    "INSERT INTO app.settings (key, value) VALUES ('t{i}.enabled', 'true')\n"
    "    ON CONFLICT (key) DO NOTHING;",
]

# squawk rules that fire on almost any DDL regardless of what it does (timeouts not set in the
# file, column type style); a case flagged only by these was not caught for being destructive.
GENERIC_SQUAWK_RULES = {
    "require-lock-timeout",
    "require-statement-timeout",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-text-field",
    "prefer-timestamptz",
}


def generate(n: int) -> str:
    stmts = list(PRELUDE)
    i = 0
    while len(stmts) < n:
        i += 1
        for t in GROUP:
            if len(stmts) == n:
                break
            stmts.append(t.format(i=i))
    head = HEADER.format(
        id="bench_generated",
        title=f"Generated {n}-statement playbook for the lint benchmark",
    )
    return head + "\n".join(stmts[:n]) + "\n"


def psql(script: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs a psql script (unaligned, tuples only); the connection comes from the PG* env."""
    with tempfile.NamedTemporaryFile("w", suffix=".psql", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        p = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-f", path],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(path)
    if check and p.returncode != 0:
        sys.exit(f"psql failed ({p.returncode}): {p.stderr.strip()}")
    return p


def timed(cmd, reps):
    """Median wall-clock seconds of `reps` runs of cmd (after one warm-up); also the last
    exit code."""
    times, rc = [], None
    for k in range(reps + 1):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        rc = p.returncode
        if k > 0:
            times.append(dt)
    return statistics.median(times), times, rc


def fmt_ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


def squawk_findings(squawk: str, path: str) -> list:
    p = subprocess.run(
        [squawk, "--reporter", "json", path], capture_output=True, text=True
    )
    out = p.stdout.strip()
    try:
        return json.loads(out) if out else []
    except json.JSONDecodeError:
        return [{"rule_name": "unparsed-output", "level": "?", "message": out[:200]}]


# ---------------------------------------------------------------------------------------------


def cmd_generate(a):
    text = generate(a.n)
    Path(a.out).write_text(text)
    print(f"wrote {a.out}: {a.n} statements, {text.count(chr(10))} lines, {len(text)} bytes")


def cmd_speed(a):
    file = os.path.abspath(a.file)
    reps = a.reps
    n_stmts = sum(1 for line in open(file) if line.rstrip().endswith(";"))
    print(f"file: {a.file} ({os.path.getsize(file)} bytes, ~{n_stmts} statements), "
          f"{reps} timed runs each after one warm-up, median reported")

    # repair.lint: the file as a psql variable (psql quotes it as a literal), \timing per call
    script = f"\\set content `cat {file}`\n\\timing on\n" + (
        "SELECT count(*) FROM repair.lint(:'content');\n" * (reps + 1)
    )
    p = psql(script)
    ms = [float(x) for x in re.findall(r"^Time: ([0-9.]+) ms", p.stdout, re.M)]
    if len(ms) != reps + 1:
        sys.exit(f"could not read psql timings:\n{p.stdout}\n{p.stderr}")
    lint_times = [m / 1000 for m in ms[1:]]
    lint_med = statistics.median(lint_times)

    # what repair.lint found
    p = psql(
        f"\\set content `cat {file}`\n"
        "SELECT severity, rule, count(*) FROM repair.lint(:'content') "
        "GROUP BY 1, 2 ORDER BY 1, 2;\n"
    )
    lint_found = [line.split("|") for line in p.stdout.split("\n") if line.strip()]

    # squawk on the same file (it skips the header: comments)
    sq_med, sq_times, sq_rc = timed([a.squawk, "--reporter", "gcc", file], reps)
    sq_found = Counter(
        (f.get("level", "?").lower(), f.get("rule_name", "?"))
        for f in squawk_findings(a.squawk, file)
    )

    lint_label = "repair.lint (psql \\timing)"
    print()
    print(f"  {lint_label:<34} median {fmt_ms(lint_med):>10}   "
          f"runs: {', '.join(fmt_ms(t) for t in lint_times)}")
    sq_label = a.squawk_version + " (wall clock)"
    print(f"  {sq_label:<34} median {fmt_ms(sq_med):>10}   "
          f"runs: {', '.join(fmt_ms(t) for t in sq_times)}")
    ratio = sq_med / lint_med if lint_med > 0 else float("inf")
    print(f"  ratio squawk / repair.lint: {ratio:.2f}x   (target >= 3x: "
          f"{'met' if ratio >= 3 else 'NOT met'})")

    if a.pgrepair and os.access(a.pgrepair, os.X_OK):
        cli_med, cli_times, cli_rc = timed(
            [a.pgrepair, "--dsn", a.dsn, "lint", file], reps
        )
        cli_label = "pgrepair lint (CLI, wall clock)"
        if cli_rc not in (0, 1):
            # 0/1 are lint verdicts; anything else (usage, connection) means nothing was linted.
            print(f"  {cli_label:<34} exit {cli_rc}: not timed (stale binary or no connection? "
                  "cargo build --release -p pgrepair)")
        else:
            print(f"  {cli_label:<34} median {fmt_ms(cli_med):>10}   "
                  f"runs: {', '.join(fmt_ms(t) for t in cli_times)}   exit {cli_rc}")
            print(f"  ratio squawk / pgrepair lint: {sq_med / cli_med:.2f}x")
    else:
        print("  pgrepair lint (CLI end to end): skipped, no release binary "
              "(cargo build --release -p pgrepair)")

    print()
    print("  repair.lint found:", ", ".join(f"{n} {s}[{r}]" for s, r, n in lint_found) or "nothing")
    print("  squawk found:     ", ", ".join(
        f"{n} {lvl}[{rule}]" for (lvl, rule), n in sorted(sq_found.items())) or "nothing")
    print(f"  squawk exit code: {sq_rc}")


def parse_corpus(path):
    cases, name, warn, lines = [], None, False, []
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^-- case: ([a-z0-9_]+)( \[warning\])?\s*$", line)
        if m:
            if name:
                cases.append((name, warn, "\n".join(lines).strip() + "\n"))
            name, warn, lines = m.group(1), bool(m.group(2)), []
        elif name:
            lines.append(line)
    if name:
        cases.append((name, warn, "\n".join(lines).strip() + "\n"))
    return cases


def cmd_corpus(a):
    cases = parse_corpus(a.corpus)
    work = Path(tempfile.mkdtemp(prefix="lint_corpus."))
    rows = []
    for name, warn_ok, sql in cases:
        body = work / f"{name}.sql"
        body.write_text(sql)
        playbook = work / f"{name}.playbook.sql"
        playbook.write_text(HEADER.format(id=f"case_{name}", title=f"corpus case {name}") + sql)

        p = psql(
            f"\\set content `cat {playbook}`\n"
            "SELECT severity, rule FROM repair.lint(:'content') ORDER BY line, col;\n",
            check=False,
        )
        if p.returncode != 0:
            lint_cell, lint_hit = "ERROR: " + p.stderr.strip().splitlines()[-1][:60], False
        else:
            found = [line.split("|") for line in p.stdout.split("\n") if line.strip()]
            errors = sorted({r for s, r in found if s == "error"})
            warnings = sorted({r for s, r in found if s == "warning"})
            lint_hit = bool(errors) or (warn_ok and bool(warnings))
            parts = [f"error[{r}]" for r in errors] + [f"warning[{r}]" for r in warnings]
            lint_cell = " ".join(parts) if parts else "-"

        sq = squawk_findings(a.squawk, str(body))
        sq_rules = sorted({f.get("rule_name", "?") for f in sq})
        sq_hit = bool(sq)
        sq_specific = bool(set(sq_rules) - GENERIC_SQUAWK_RULES)
        rows.append((name + (" [w]" if warn_ok else ""), lint_hit, lint_cell, sq_hit,
                     sq_specific, ", ".join(sq_rules) if sq_rules else "-"))

    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[2]) for r in rows) + 5
    print(f"  {'case':<{w0}} | {'repair.lint':<{w1}} | squawk")
    print(f"  {'-' * w0}-+-{'-' * w1}-+-{'-' * 40}")
    for name, lh, lcell, sh, sspec, scell in rows:
        lmark = "ok" if lh else "MISS"
        smark = "ok" if sspec else ("gen" if sh else "MISS")
        print(f"  {name:<{w0}} | {lmark:<5}{lcell:<{w1 - 5}} | {smark:<5}{scell}")
    n = len(rows)
    lint_miss = [r[0] for r in rows if not r[1]]
    sq_miss = [r[0] for r in rows if not r[3]]
    sq_miss_specific = [r[0] for r in rows if not r[4]]
    print()
    print(f"  {n} cases. [w] = a repair.lint warning counts as flagged for that case (DO block).")
    seen_generic = sorted(GENERIC_SQUAWK_RULES & {x for r in rows for x in r[5].split(", ")})
    print(f"  squawk marks: ok = a specific rule fired; gen = only generic rules fired "
          f"({', '.join(seen_generic) or 'none'}); MISS = nothing.")
    print(f"  repair.lint misses: {len(lint_miss)}/{n}"
          + (f"  ({', '.join(lint_miss)})" if lint_miss else ""))
    print(f"  squawk misses (no violation at all): {len(sq_miss)}/{n}")
    print(f"  squawk misses (ignoring generic rules): {len(sq_miss_specific)}/{n}")


def cmd_pgbench_summary(_a):
    """stdin: lines `MODE SIDE TPS` (SIDE A = preloaded, B = plain)."""
    runs = {}
    for line in sys.stdin:
        if line.strip():
            mode, side, tps = line.split()
            runs.setdefault((mode, side), []).append(float(tps))
    print(f"  {'pgbench -c2 -j2':<24} {'preloaded':>12} {'plain':>12} {'ratio':>8}")
    for mode, label in (("select", "select-only (-S)"), ("tpcb", "tpcb-like (built-in)")):
        if (mode, "A") not in runs or (mode, "B") not in runs:
            continue
        a = statistics.mean(runs[(mode, "A")])
        b = statistics.mean(runs[(mode, "B")])
        print(f"  {label:<24} {a:>12.0f} {b:>12.0f} {a / b:>8.3f}   "
              f"overhead {100 * (1 - a / b):+.1f}%")
    print("  (mean TPS over the rounds; overhead = 1 - preloaded/plain; "
          "negative = the preloaded cluster was faster, i.e. noise)")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out")
    g.add_argument("n", type=int, nargs="?", default=10_000)
    s = sub.add_parser("speed")
    s.add_argument("--file", required=True)
    s.add_argument("--squawk", required=True)
    s.add_argument("--squawk-version", default="")
    s.add_argument("--reps", type=int, default=5)
    s.add_argument("--pgrepair", default="")
    s.add_argument("--dsn", default="")
    c = sub.add_parser("corpus")
    c.add_argument("--corpus", required=True)
    c.add_argument("--squawk", required=True)
    sub.add_parser("pgbench-summary")
    a = ap.parse_args()
    {
        "generate": cmd_generate,
        "speed": cmd_speed,
        "corpus": cmd_corpus,
        "pgbench-summary": cmd_pgbench_summary,
    }[a.cmd](a)


if __name__ == "__main__":
    main()
