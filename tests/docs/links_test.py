#!/usr/bin/env python3
"""Every relative link in the repository's Markdown resolves inside it.

usage: links_test.py REPO_ROOT

Checks [text](target) links in README.md, docs/, bench/, examples/ and
compose/ Markdown: a relative target must name a file or folder that
exists (an #anchor is cut off first), and no link may leave the
repository (a clone has nothing beside it). http(s) and mailto links are
not fetched.
"""
import os
import re
import sys

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def markdown_files(root):
    for top in ("README.md",):
        yield os.path.join(root, top)
    for folder in ("docs", "bench", "examples", "compose", "scripts", "sql", "web"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, folder)):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.startswith("build")]
            for name in filenames:
                if name.endswith(".md"):
                    yield os.path.join(dirpath, name)


def links(path):
    in_fence = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line.strip()):
                in_fence = not in_fence
                continue
            if in_fence:
                continue
            for target in LINK.findall(line):
                yield number, target


def main():
    root = os.path.realpath(sys.argv[1])
    checked, broken = 0, []
    for path in markdown_files(root):
        if not os.path.exists(path):
            continue
        for number, target in links(path):
            if re.match(r"^(https?|mailto):", target) or target.startswith("#"):
                continue
            checked += 1
            where = "%s:%d: %s" % (os.path.relpath(path, root), number, target)
            resolved = os.path.realpath(os.path.join(os.path.dirname(path), target.split("#", 1)[0]))
            if not (resolved == root or resolved.startswith(root + os.sep)):
                broken.append(where + " (leaves the repository)")
            elif not os.path.exists(resolved):
                broken.append(where + " (no such file)")
    for b in broken:
        print("FAIL " + b)
    print("%d relative links checked, %d broken" % (checked, len(broken)))
    if checked == 0:
        print("FAIL no links found: the scan itself is broken")
        return 1
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
