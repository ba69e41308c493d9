#!/usr/bin/env python3
"""Static checks of compose/: docker-compose.yml, Dockerfile, freshet.json.

Docker is not needed: the files are parsed and cross-checked against each
other, against the config schema (core/config.cpp) and against the root
CMakeLists.txt. Standard library plus PyYAML (python3-yaml) only.

Usage: compose_test.py [REPO_ROOT]   (default: two levels up from this file)
Prints one line per check and "N passed, M failed"; exits 1 if any failed.
"""

import json
import os
import re
import sys
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover - reported as a failure, not a traceback
    yaml = None

ALLOWED_ENV = {
    "FRESHET_KAFKA_BROKERS",
    "FRESHET_POSTGRES_URL",
    "FRESHET_WRITER_LISTEN",
    "FRESHET_VIEWS_LISTEN",
    "FRESHET_LOG_LEVEL",
}
TOP_LEVEL_KEYS = {"kafka", "postgres", "writer", "views", "log_level"}
# Published ports: service -> container port that must be published.
EXPECTED_PORTS = {"writer": 8080, "views": 8081, "postgres": 5432}
# The freshet services: service -> (subcommand, config section with "listen").
FRESHET_SERVICES = {"writer": "writer", "views": "views"}

# What the root CMakeLists.txt asks for (find_package / pkg_check_modules
# name, lower case) -> the Debian bookworm packages that provide it.
CMAKE_DEPS = {
    "rdkafka": ["librdkafka-dev"],
    "libpqxx": ["libpqxx-dev"],
    "rocksdb": ["librocksdb-dev"],
    "nlohmann_json": ["nlohmann-json3-dev"],
    "boost": ["libboost1.81-dev"],
    "spdlog": ["libspdlog-dev"],
    "cli11": ["libcli11-dev"],
    "simdjson": ["libsimdjson-dev"],
    "jemalloc": ["libjemalloc-dev"],  # find_library
    "pkgconfig": ["pkg-config"],
    "threads": [],  # libc
}
# Boost components -> their -dev packages.
BOOST_COMPONENTS = {"system": "libboost-system1.81-dev"}
# The dependencies the brief insists on finding in CMakeLists.txt.
MUST_CHECK = ["rdkafka", "libpqxx", "rocksdb", "nlohmann_json", "boost", "spdlog", "cli11"]


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS  {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
        return ok


def strip_json_comments(text):
    """Removes // and /* */ comments outside of strings (URLs keep their //)."""
    out = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
        elif c == '"':
            in_string = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def env_dict(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        d = {}
        for item in env:
            k, _, v = str(item).partition("=")
            d[k] = v
        return d
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def published_ports(service):
    """Set of (host_port or None, container_port) for a service's ports."""
    result = set()
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            target = int(p["target"])
            published = p.get("published")
            result.add((int(published) if published is not None else None, target))
            continue
        spec = str(p).split("/")[0]
        parts = spec.split(":")
        target = int(parts[-1])
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        result.add((host, target))
    return result


def listen_port(listen):
    host, _, port = listen.rpartition(":")
    return host, int(port)


def config_schema(root):
    """Known keys per section, read from core/config.cpp (None if unreadable)."""
    path = os.path.join(root, "core", "config.cpp")
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return None
    schema = {}
    for m in re.finditer(r"Status\s+Bind(\w+)\s*\([^)]*\)\s*\{(.*?)\n\}", text, re.S):
        schema[m.group(1).lower()] = set(re.findall(r'o\.\w+\(\s*"(\w+)"', m.group(2)))
    return schema or None


def cmake_dependencies(cmake_text):
    """(names, boost components) that the root CMakeLists.txt asks for (find_package,
    find_library NAMES, pkg_check_modules)."""
    text = re.sub(r"#[^\n]*", "", cmake_text)
    names = set()
    components = set()
    for m in re.finditer(r"find_package\s*\(\s*(\w+)([^)]*)\)", text):
        names.add(m.group(1).lower())
        if m.group(1).lower() == "boost":
            comp = re.search(r"COMPONENTS\s+([\w\s]+)", m.group(2))
            if comp:
                components.update(w.lower() for w in comp.group(1).split()
                                  if w not in ("REQUIRED", "OPTIONAL_COMPONENTS", "CONFIG", "QUIET"))
    for m in re.finditer(r"find_library\s*\(\s*\w+\s+NAMES\s+(\w+)", text):
        names.add(m.group(1).lower())
    for m in re.finditer(r"pkg_check_modules\s*\(([^)]*)\)", text):
        words = m.group(1).split()
        keywords = {"REQUIRED", "QUIET", "IMPORTED_TARGET", "GLOBAL", "NO_CMAKE_PATH", "NO_CMAKE_ENVIRONMENT_PATH"}
        modules = [w for w in words[1:] if w not in keywords]
        for mod in modules:
            names.add(re.split(r"[<>=]", mod)[0].lower())
    return names, components


def dockerfile_stages(text):
    """List of (from_line, body) per stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [l for l in joined.splitlines() if not l.lstrip().startswith("#")]
    stages = []
    for line in lines:
        if re.match(r"\s*FROM\s", line, re.I):
            stages.append([line.strip(), []])
        elif stages:
            stages[-1][1].append(line)
    return [(f, "\n".join(b)) for f, b in stages]


def apt_packages(stage_body):
    pkgs = set()
    for m in re.finditer(r"apt-get\s+install\s+([^&;\n]*)", stage_body):
        pkgs.update(w for w in m.group(1).split() if not w.startswith("-"))
    return pkgs


def main(argv):
    root = os.path.abspath(argv[1] if len(argv) > 1 else
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    compose_dir = os.path.join(root, "compose")
    t = Checks()

    # ---------------------------------------------------------------- YAML
    compose = None
    if t.check("PyYAML is importable", yaml is not None, "install python3-yaml"):
        try:
            with open(os.path.join(compose_dir, "docker-compose.yml"), encoding="utf-8") as f:
                compose = yaml.safe_load(f)
            t.check("docker-compose.yml is valid YAML (a mapping)", isinstance(compose, dict),
                    f"top level is {type(compose).__name__}")
        except (OSError, yaml.YAMLError) as e:
            t.check("docker-compose.yml is valid YAML (a mapping)", False, str(e))
    if not isinstance(compose, dict):
        compose = {}
    services = compose.get("services") or {}

    for name in ("kafka", "postgres", "writer", "views"):
        t.check(f"service {name} exists", isinstance(services.get(name), dict))
    svc = {k: v for k, v in services.items() if isinstance(v, dict)}

    for name, port in EXPECTED_PORTS.items():
        ports = published_ports(svc.get(name, {})) if name in svc else set()
        t.check(f"{name} publishes container port {port} on host port {port}", (port, port) in ports,
                f"ports: {sorted(ports, key=str)}")
    if "kafka" in svc:
        t.check("kafka publishes no ports (internal only)", not svc["kafka"].get("ports"),
                f"ports: {svc['kafka'].get('ports')}")
        hc = svc["kafka"].get("healthcheck", {}).get("test")
        hc_text = " ".join(hc) if isinstance(hc, list) else str(hc)
        t.check("kafka healthcheck runs kafka-broker-api-versions.sh",
                "/opt/kafka/bin/kafka-broker-api-versions.sh" in hc_text, hc_text)
    if "postgres" in svc:
        hc = svc["postgres"].get("healthcheck", {}).get("test")
        hc_text = " ".join(hc) if isinstance(hc, list) else str(hc)
        t.check("postgres healthcheck runs pg_isready", "pg_isready" in hc_text, hc_text)

    for name in FRESHET_SERVICES:
        s = svc.get(name, {})
        build = s.get("build")
        ok = isinstance(build, dict) and build.get("context") == ".." and build.get("dockerfile") == "compose/Dockerfile"
        t.check(f"{name} builds compose/Dockerfile with context ..", ok, f"build: {build}")
        t.check(f"{name} uses image freshet:latest", s.get("image") == "freshet:latest", f"image: {s.get('image')}")
        env = env_dict(s)
        unknown = sorted(set(env) - ALLOWED_ENV)
        t.check(f"{name} sets only known FRESHET_* variables", not unknown, f"unknown: {unknown}")

    # ---------------------------------------------------------------- config
    config = None
    try:
        with open(os.path.join(compose_dir, "freshet.json"), encoding="utf-8") as f:
            config = json.loads(strip_json_comments(f.read()))
        t.check("freshet.json parses as JSON once // comments are stripped", isinstance(config, dict),
                f"top level is {type(config).__name__}")
    except (OSError, ValueError) as e:
        t.check("freshet.json parses as JSON once // comments are stripped", False, str(e))
    if not isinstance(config, dict):
        config = {}
    t.check("freshet.json has only the known top-level keys", set(config) <= TOP_LEVEL_KEYS,
            f"unknown: {sorted(set(config) - TOP_LEVEL_KEYS)}")
    t.check("freshet.json has every top-level key", set(config) == TOP_LEVEL_KEYS,
            f"missing: {sorted(TOP_LEVEL_KEYS - set(config))}")

    schema = config_schema(root)
    if schema is not None:
        bad = []
        for section, value in config.items():
            if isinstance(value, dict) and section in schema:
                bad += [f"{section}.{k}" for k in value if k not in schema[section]]
        t.check("freshet.json section keys are known to core/config.cpp", not bad, f"unknown: {bad}")
        known_paths = {f"{s}.{k}" for s, keys in schema.items() for k in keys} | {"log_level"}
        env_names = {"FRESHET_" + p.upper().replace(".", "_") for p in known_paths}
        t.check("every allowed FRESHET_* variable names a config field", ALLOWED_ENV <= env_names,
                f"not fields: {sorted(ALLOWED_ENV - env_names)}")

    def effective(env, path):
        """Value of a dotted config path once the service's environment is applied."""
        var = "FRESHET_" + path.upper().replace(".", "_")
        if var in env:
            return env[var]
        node = config
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    kafka_env = env_dict(svc.get("kafka", {}))
    advertised = kafka_env.get("KAFKA_ADVERTISED_LISTENERS", "")
    advertised_hosts = {a.split("://", 1)[-1] for a in advertised.split(",") if a}
    pg_env = env_dict(svc.get("postgres", {}))

    for name, section in FRESHET_SERVICES.items():
        s = svc.get(name, {})
        env = env_dict(s)
        command = s.get("command") or []
        t.check(f"{name} runs `freshet {section} --config ...`",
                isinstance(command, list) and command[:1] == [section] and "--config" in command, f"command: {command}")
        cfg_path = command[command.index("--config") + 1] if "--config" in command[:-1] else None
        mounts = {}
        for v in s.get("volumes") or []:
            parts = str(v).split(":")
            if len(parts) >= 2:
                mounts[parts[1]] = parts[0]
        src = mounts.get(cfg_path)
        t.check(f"{name} mounts compose/freshet.json at its --config path",
                src is not None and os.path.normpath(os.path.join(compose_dir, src)) ==
                os.path.join(compose_dir, "freshet.json"), f"--config {cfg_path}, volumes {s.get('volumes')}")

        listen = effective(env, f"{section}.listen")
        try:
            host, port = listen_port(str(listen))
            ports = {c for _, c in published_ports(s)}
            t.check(f"{name} listens on {listen}, a published container port", port in ports,
                    f"published container ports: {sorted(ports)}")
            t.check(f"{name} listens on all interfaces (reachable through the port mapping)",
                    host in ("0.0.0.0", "", "[::]", "::"), f"listen host {host!r}")
        except ValueError:
            t.check(f"{name} listen address has a port", False, f"listen: {listen!r}")

        brokers = str(effective(env, "kafka.brokers") or "")
        t.check(f"{name} uses a broker that kafka advertises",
                bool(brokers) and set(brokers.split(",")) <= advertised_hosts,
                f"brokers {brokers!r}, advertised {sorted(advertised_hosts)}")

        deps = s.get("depends_on") or {}
        needed = ["kafka"] + (["postgres"] if name == "views" else [])
        for d in needed:
            cond = deps.get(d, {}).get("condition") if isinstance(deps, dict) else None
            t.check(f"{name} waits for {d} to be healthy", cond == "service_healthy", f"depends_on: {deps}")

    views_env = env_dict(svc.get("views", {}))
    url = str(effective(views_env, "postgres.url") or "")
    u = urlsplit(url)
    pg_ok = (u.scheme in ("postgresql", "postgres") and u.hostname == "postgres" and (u.port or 5432) == 5432
             and u.username == pg_env.get("POSTGRES_USER") and u.password == pg_env.get("POSTGRES_PASSWORD")
             and u.path.lstrip("/") == pg_env.get("POSTGRES_DB"))
    t.check("views' postgres.url matches the postgres service", pg_ok, f"url {url!r}")

    # ---------------------------------------------------------------- Dockerfile
    try:
        dockerfile = open(os.path.join(compose_dir, "Dockerfile"), encoding="utf-8").read()
    except OSError as e:
        dockerfile = ""
        t.check("compose/Dockerfile exists", False, str(e))
    stages = dockerfile_stages(dockerfile)
    t.check("Dockerfile has a debian:bookworm build stage and a debian:bookworm-slim runtime stage",
            len(stages) >= 2 and re.search(r"\bdebian:bookworm\b(?!-)", stages[0][0]) is not None
            and "debian:bookworm-slim" in stages[-1][0], f"stages: {[f for f, _ in stages]}")
    build_pkgs = apt_packages(stages[0][1]) if stages else set()
    runtime_body = stages[-1][1] if stages else ""
    runtime_pkgs = apt_packages(runtime_body)

    try:
        cmake_text = open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8").read()
    except OSError as e:
        cmake_text = ""
        t.check("root CMakeLists.txt is readable", False, str(e))
    names, components = cmake_dependencies(cmake_text)
    for dep in MUST_CHECK:
        in_cmake = dep in names
        pkgs = CMAKE_DEPS[dep] + ([BOOST_COMPONENTS[c] for c in sorted(components) if c in BOOST_COMPONENTS]
                                  if dep == "boost" else [])
        missing = [p for p in pkgs if p not in build_pkgs]
        t.check(f"CMakeLists.txt needs {dep}; the build stage installs {', '.join(pkgs)}",
                in_cmake and not missing,
                "not found in CMakeLists.txt" if not in_cmake else f"missing: {missing}")
    unmapped = sorted(n for n in names if n not in CMAKE_DEPS)
    t.check("every CMakeLists.txt dependency has a known Debian package", not unmapped,
            f"add to CMAKE_DEPS and the Dockerfile: {unmapped}")
    unmapped_comp = sorted(c for c in components if c not in BOOST_COMPONENTS)
    t.check("every Boost component has a known Debian package", not unmapped_comp, f"{unmapped_comp}")
    other_missing = sorted(p for n in names for p in CMAKE_DEPS.get(n, []) if p not in build_pkgs)
    t.check("the build stage installs every mapped -dev package", not other_missing, f"missing: {other_missing}")

    options = set(re.findall(r"option\(\s*(FRESHET_\w+)", cmake_text))
    options |= set(re.findall(r"set\(\s*(FRESHET_\w+)\s+[^)]*\bCACHE\b", cmake_text))
    used = set(re.findall(r"-D(FRESHET_\w+)=", dockerfile))
    t.check("Dockerfile's -DFRESHET_* options exist in CMakeLists.txt", used <= options,
            f"unknown: {sorted(used - options)}")
    t.check("Dockerfile builds target freshet into /build",
            re.search(r"cmake\s+--build\s+/build\s+--target\s+freshet\b", dockerfile) is not None)
    t.check("runtime stage copies /build/freshet to /usr/local/bin/freshet",
            re.search(r"COPY\s+--from=\S+\s+/build/freshet\s+/usr/local/bin/freshet", runtime_body) is not None)
    # librdkafka is the 2.8.0 the build stage built (scripts/librdkafka),
    # copied to the path of the binary's rpath.
    t.check("runtime stage copies the librdkafka the build stage built",
            re.search(r"COPY\s+--from=\S+\s+/opt/freshet/librdkafka/\S+/lib/\s+/opt/freshet/librdkafka/\S+/lib/",
                      runtime_body) is not None)
    runtime_needed = ["libssl3", "libsasl2-2", "libzstd1", "liblz4-1", "libavro23", "libprotobuf32", "libprotoc32",
                      "libcurl4", "libpqxx-6.4", "librocksdb7.8", "libsimdjson14", "libspdlog1.10", "libfmt9", "libjemalloc2",
                      "libboost-system1.81.0", "ca-certificates"]
    t.check("runtime stage installs the runtime libraries", set(runtime_needed) <= runtime_pkgs,
            f"missing: {sorted(set(runtime_needed) - runtime_pkgs)}")
    t.check("runtime stage installs no -dev package", not [p for p in runtime_pkgs if p.endswith("-dev")],
            f"{sorted(p for p in runtime_pkgs if p.endswith('-dev'))}")
    t.check("runtime stage runs as user freshet", re.search(r"^\s*USER\s+freshet\b", runtime_body, re.M) is not None)
    t.check('runtime ENTRYPOINT is ["freshet"]',
            re.search(r'^\s*ENTRYPOINT\s+\[\s*"freshet"\s*\]', runtime_body, re.M) is not None)
    exposed = set()
    for m in re.finditer(r"^\s*EXPOSE\s+(.+)$", runtime_body, re.M):
        exposed.update(int(p.split("/")[0]) for p in m.group(1).split())
    t.check("runtime EXPOSEs the writer and views ports", {8080, 8081} <= exposed, f"EXPOSE {sorted(exposed)}")

    try:
        ignore = open(os.path.join(root, ".dockerignore"), encoding="utf-8").read().split()
    except OSError:
        ignore = []
    t.check(".dockerignore keeps build*/, .freshet/ and .git/ out of the context",
            {"build*/", ".freshet/", ".git/"} <= set(ignore), f"entries: {ignore}")

    print(f"{t.passed} passed, {t.failed} failed")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
