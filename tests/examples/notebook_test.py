#!/usr/bin/env python3
"""examples/notebook.py answers --help without running the notebook and
without touching the network, and when a package it needs is missing it
exits before any connection with the pip (and apt) line that installs it.

usage: notebook_test.py REPO_ROOT

Runs the notebook in a child Python whose socket module refuses every
connection and name lookup (and records the attempt), so "no network" is
checked, not assumed.
"""
import json
import os
import subprocess
import sys
import tempfile

# Runs the notebook as __main__ with the network cut off; reports what it
# tried and which third-party modules it imported.
HARNESS = r"""
import json, runpy, socket, sys
report_path, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
attempts = []
def refuse(*a, **k):
    attempts.append(repr(a[1:] if a and isinstance(a[0], socket.socket) else a)[:200])
    raise OSError("network blocked by notebook_test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
code = 0
sys.argv = [script] + args
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
except BaseException:
    import traceback
    traceback.print_exc()
    code = 1
finally:
    with open(report_path, "w") as f:
        json.dump({"code": code, "attempts": attempts,
                   "imported": sorted(m for m in ("pandas", "psycopg2", "websockets") if m in sys.modules)}, f)
"""


def run(repo, args, extra_path=None):
    script = os.path.join(repo, "examples", "notebook.py")
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        env = dict(os.environ)
        if extra_path:
            env["PYTHONPATH"] = extra_path + os.pathsep + env.get("PYTHONPATH", "")
        # Point every address at a port nobody should use: a leak would show
        # as an attempt even if the blocker missed it.
        env.update({"PG_URL": "postgresql://nobody@127.0.0.1:9/none", "WRITER_URL": "http://127.0.0.1:9",
                    "VIEWS_URL": "http://127.0.0.1:9"})
        proc = subprocess.run([sys.executable, "-c", HARNESS, report, script, *args], env=env,
                              capture_output=True, text=True, timeout=60)

        with open(report) as f:
            result = json.load(f)
    result["output"] = proc.stdout + proc.stderr
    return result


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    failures = []

    def check(what, ok, detail):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(f"{what}\n{detail}")

    # --help: usage and options, exit 0, no network, not even the network libraries.
    r = run(repo, ["--help"])
    out = r["output"]
    check("--help exits 0", r["code"] == 0, out)
    check("--help prints the usage and the options", "usage:" in out and "--dry-run" in out and "--writer-url" in out, out)
    check("--help touches no network", not r["attempts"], r["attempts"])
    check("--help imports none of pandas/psycopg2/websockets", not r["imported"], r["imported"])

    # A missing package: exit 2 before any connection, with the lines that install it.
    with tempfile.TemporaryDirectory() as fake:
        with open(os.path.join(fake, "websockets.py"), "w") as f:
            f.write('raise ImportError("websockets hidden by notebook_test")\n')
        r = run(repo, ["--dry-run"], extra_path=fake)
    out = r["output"]
    check("a missing package exits 2", r["code"] == 2, out)
    check("a missing package names the pip line", "pip install" in out and "websockets" in out, out)
    check("a missing package names the apt line", "apt-get install -y" in out and "python3-websockets" in out, out)
    check("a missing package touches no network", not r["attempts"], r["attempts"])

    if failures:
        print("\n\n".join(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
