#!/usr/bin/env python3
"""examples/seat-booking built as a user would build it, and run for real.

usage: seat_booking_test.py REPO_ROOT FRESHET_BUILD_DIR WORK_DIR

1. `cmake --install` freshet's build into WORK_DIR/prefix;
2. configures and builds examples/seat-booking in a clean WORK_DIR/build
   against that prefix only (CMAKE_PREFIX_PATH; the example's CMakeLists
   knows no path into freshet's tree);
3. runs the example binary on the suite's broker and Postgres: two writer
   instances and a view process with the example's config; commands in,
   a refusal for each domain rule, the C++ view and the declarative view's
   rows in Postgres; then SIGKILL of the instance that owns the venue, a
   takeover by the other with nothing lost, and a retried command answered
   from the idempotency keys.

Prints how long the build took and how big the installed package is.
Only the Python standard library, curl-free (urllib) and psql.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BROKERS = os.environ.get("FRESHET_KAFKA_BROKERS", "127.0.0.1:19092")
PG_ADMIN = os.environ.get("FRESHET_PG_URL", "postgresql://freshet@127.0.0.1:15432/freshet")
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def wait_until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except (OSError, ValueError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    check(False, "waited %d s for %s" % (seconds, what))
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=10):
    """(status, JSON answer); 307s are not followed (the caller decides)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text or b"null")
        except ValueError:
            return e.code, {"raw": text.decode(errors="replace")}


def psql(url, sql):
    out = subprocess.run(["psql", url, "-XAtq", "-F", "|", "-c", sql], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise ValueError(out.stderr)
    return [line for line in out.stdout.splitlines() if line]


def run(cmd, **kwargs):
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if out.returncode != 0:
        print(out.stdout[-4000:], out.stderr[-4000:], file=sys.stderr)
        raise SystemExit("FAIL %s exited %d" % (" ".join(cmd), out.returncode))
    return time.monotonic() - started


class Process:
    def __init__(self, args, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def text(self):
        with open(self.log_path) as f:
            return f.read()


def main():
    repo, build_dir, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    prefix, example_build = os.path.join(work, "prefix"), os.path.join(work, "build")

    install_s = run(["cmake", "--install", build_dir, "--prefix", prefix, "--strip"])
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(prefix) for f in fs)
    configure = ["cmake", "-S", os.path.join(repo, "examples", "seat-booking"), "-B", example_build,
                 "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    build_s = run(configure) + run(["cmake", "--build", example_build, "-j2"])
    binary = os.path.join(example_build, "seat-booking")
    check(os.path.exists(binary), "the example builds against the installed package")
    print("install %.1f s, package %.0f MB (stripped); example configure + build %.1f s" %
          (install_s, size / 1e6, build_s), flush=True)
    with open(os.path.join(example_build, "CMakeCache.txt")) as f:
        check(os.path.join(repo, "writer") not in f.read(), "the example's build refers to no path in freshet's tree")

    # An unknown domain is refused with the registered names.
    bad = subprocess.run([binary, "writer", "--config", os.path.join(repo, "examples/seat-booking/seat-booking.json")],
                         env={**os.environ, "FRESHET_WRITER_DOMAIN": "inventory", "FRESHET_KAFKA_BROKERS": BROKERS},
                         capture_output=True, text=True, timeout=30)
    check(bad.returncode == 2 and 'registered: seat_booking' in bad.stderr,
          "writer.domain=inventory is refused, naming seat_booking: " + bad.stderr.strip())

    name = "seat_booking_%d_%d" % (os.getpid(), random.randrange(1 << 30))
    psql(PG_ADMIN, "CREATE DATABASE %s" % name)
    pg_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    config = os.path.join(repo, "examples/seat-booking/seat-booking.json")
    common = {"FRESHET_KAFKA_BROKERS": BROKERS, "FRESHET_KAFKA_TOPIC": name, "FRESHET_POSTGRES_URL": pg_url,
              "FRESHET_WRITER_OWNERS_TOPIC": name + "-owners", "FRESHET_WRITER_SESSION_TIMEOUT_MS": "3000",
              "FRESHET_KAFKA_DEAD_LETTER_TOPIC": name + "-dlq"}
    ports = {"a": free_port(), "b": free_port()}
    writers = {}
    for instance in ("a", "b"):
        env = dict(common, FRESHET_WRITER_LISTEN="127.0.0.1:%d" % ports[instance], FRESHET_WRITER_INSTANCE_ID=instance)
        writers[instance] = Process([binary, "writer", "--config", config], env,
                                    os.path.join(work, "writer-%s.log" % instance))
    views_port = free_port()
    views = Process([binary, "views", "--config", config],
                    dict(common, FRESHET_VIEWS_LISTEN="127.0.0.1:%d" % views_port, FRESHET_VIEWS_GROUP_ID=name,
                         FRESHET_VIEWS_ROCKSDB_PATH=os.path.join(work, "views.rocksdb")),
                    os.path.join(work, "views.log"))
    try:
        scenario(writers, ports, views, views_port, pg_url)
    finally:
        for p in list(writers.values()) + [views]:
            p.stop(signal.SIGKILL)
        for p in list(writers.values()) + [views]:
            if failures:
                print("---- %s\n%s" % (p.log_path, p.text()[-3000:]), file=sys.stderr)
    if failures:
        raise SystemExit("%d failed: %s" % (len(failures), "; ".join(failures)))


def scenario(writers, ports, views, views_port, pg_url):
    def ready(instance):
        status, body = http("GET", "http://127.0.0.1:%d/readyz" % ports[instance])
        return status == 200 and all(p["role"] in ("owner", "standby") for p in body["partitions"])
    wait_until(lambda: ready("a") and ready("b"), 60, "both writers ready")

    def send(command, via=("a", "b"), seconds=30):
        """Posts to the first live instance, following a 307 to the owner and
        retrying (same id) through a takeover. Returns (status, answer)."""
        deadline = time.monotonic() + seconds
        while True:
            for instance in via:
                if writers[instance].proc.poll() is not None:
                    continue
                try:
                    status, body = http("POST", "http://127.0.0.1:%d/commands" % ports[instance], command)
                    if status == 307:
                        status, body = http("POST", body["owner"] + "/commands", command)
                except (OSError, urllib.error.URLError) as e:
                    status, body = 0, {"error": str(e)}
                if status in (200, 400, 409):
                    return status, body
            if time.monotonic() > deadline:
                return status, body
            time.sleep(0.2)

    def expect(command, status, reason=None):
        got, body = send(command)
        what = "%s %s -> %d" % (command["type"], command.get("order", command.get("show", "")), status)
        if reason:
            what += " (%s)" % reason
        ok = got == status and (reason is None or reason in body.get("error", ""))
        check(ok, what + ("" if ok else ": got %d %s" % (got, body)))
        return body

    venue = "hall-1"
    seats = ["A%d" % i for i in range(1, 21)]
    expect({"type": "add_seats", "venue": venue, "show": "s1", "seats": seats, "id": "add-s1"}, 200)
    held = expect({"type": "hold", "venue": venue, "show": "s1", "order": "o1", "seats": ["A1", "A2", "A3"],
                   "now": 1000, "id": "hold-o1"}, 200)
    expect({"type": "hold", "venue": venue, "show": "s1", "order": "o2", "seats": ["A3"], "now": 2000},
           409, "is held by another order")
    expect({"type": "hold", "venue": venue, "show": "s1", "order": "o3", "seats": seats[5:16], "now": 2000},
           409, "an order holds at most 10 seats")
    expect({"type": "hold", "venue": venue, "show": "s1", "order": "o4", "seats": ["Z9"], "now": 2000},
           409, "has no seat Z9")
    expect({"type": "buy", "venue": venue, "order": "o1", "now": 3000, "id": "buy-o1"}, 200)
    expect({"type": "hold", "venue": venue, "show": "s1", "order": "o5", "seats": ["A1"], "now": 4000}, 409, "is sold")
    expect({"type": "hold", "venue": venue, "show": "s1", "order": "o6", "seats": ["A5"], "now": 5000,
            "hold_ms": 1000}, 200)
    expect({"type": "buy", "venue": venue, "order": "o6", "now": 7000}, 409, "hold expired at 6000")
    expect({"type": "hold", "venue": venue, "show": "s1", "order": "o7", "seats": ["A5"], "now": 7000}, 200)
    expect({"type": "hold", "venue": venue, "seats": ["A5"], "now": 7000}, 400, "show")

    wait_until(lambda: psql(pg_url, "SELECT show, free FROM seats_free") == ["s1|17"], 60,
               "seats_free (the C++ view) shows 17 free seats of s1")
    check(psql(pg_url, "SELECT show, free FROM seats_free") == ["s1|17"], "seats_free = s1|17")
    wait_until(lambda: psql(pg_url, "SELECT count(*) FROM seat_states WHERE state = 'sold'") == ["3"], 60,
               "seat_states (the declarative view) shows 3 sold seats")
    states = psql(pg_url, "SELECT seat, state, coalesce(held_by, '') FROM seat_states WHERE state <> 'free' ORDER BY seat")
    check(states == ["A1|sold|o1", "A2|sold|o1", "A3|sold|o1", "A5|held|o7"], "seat_states rows: %s" % states)
    check(psql(pg_url, "SELECT count(*) FROM seat_states") == ["20"], "seat_states has every seat of s1")

    # Kill the instance that owns the venue's partition; the other takes over.
    status, _ = http("GET", "http://127.0.0.1:%d/state/%s/order:o1" % (ports["a"], venue))
    owner, survivor = ("a", "b") if status == 200 else ("b", "a")
    writers[owner].stop(signal.SIGKILL)
    started = time.monotonic()
    expect({"type": "add_seats", "venue": venue, "show": "s2", "seats": ["B1", "B2", "B3", "B4", "B5"],
            "id": "add-s2"}, 200)
    print("takeover after SIGKILL of writer %s: first command accepted after %.1f s" %
          (owner, time.monotonic() - started), flush=True)
    expect({"type": "hold", "venue": venue, "show": "s2", "order": "o8", "seats": ["B1", "B2"], "now": 8000}, 200)
    expect({"type": "buy", "venue": venue, "order": "o8", "now": 8001}, 200)
    # Nothing acknowledged before the kill is lost: the survivor's state has
    # it, and a retry is answered from the idempotency keys.
    status, body = http("GET", "http://127.0.0.1:%d/state/%s/order:o1" % (ports[survivor], venue))
    check(status == 200 and body["entity"]["state"] == "sold" and body["entity"]["seats"] == ["A1", "A2", "A3"],
          "order o1 is sold with A1-A3 on the survivor: %s" % body)
    status, body = send({"type": "hold", "venue": venue, "show": "s1", "order": "o1", "seats": ["A1", "A2", "A3"],
                         "now": 1000, "id": "hold-o1"}, via=(survivor,))
    check(status == 200 and body.get("duplicate") is True and body.get("offset") == held.get("offset"),
          "a retry of hold-o1 gets its first answer (offset %s): %s" % (held.get("offset"), body))
    wait_until(lambda: sorted(psql(pg_url, "SELECT show, free FROM seats_free")) == ["s1|17", "s2|3"], 60,
               "seats_free after the takeover: s1|17, s2|3")
    check(views.stop(signal.SIGTERM) == 0, "the view process stops cleanly on SIGTERM")


if __name__ == "__main__":
    main()
