#!/usr/bin/env python3
"""Secrets never shown: search everything keyward showed during the test
suite for the credentials the tests gave it.

The tests give keyward recognisable credentials -- canaries, which start with "kwCANARY-",
and secrets they did not choose, registered as needles -- and keep everything keyward
showed under DIR (default target/tmp/shown; tests/support/shown.rs): each CLI run's output,
each operator's log, /metrics, the Events and keyward objects of its namespace, audit lines.
This looks for every needle, raw and base64-encoded at any byte alignment (standard and
URL-safe alphabets), and exits 1 naming the file and line of each find. It also exits 1 when
the suite recorded too little to mean anything: no needles, or no file of a kind.

Standard library only.  Usage: secrets_shown.py [DIR]
"""

import base64
import collections
import os
import sys

CANARY = "kwCANARY"
KINDS = ("cli", "operator-log", "metrics", "objects", "audit")


def encodings(needle):
    """The needle, and the base64 text that encodes it wherever it sits in an encoded value:
    at each of the three byte offsets, the characters that depend on its bytes alone."""
    raw = needle.encode()
    found = {needle}
    for offset in range(3):
        padded = b"\0" * offset + raw
        first = (offset * 8 + 5) // 6  # the first character with none of the pad's bits
        last = (len(padded) * 8) // 6  # characters after it mix in what follows
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(padded).decode()[first:last]
            if len(text) >= 8:
                found.add(text)
    return found


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.join("target", "tmp", "shown")
    if not os.path.isdir(root):
        print(f"secrets_shown: {root} does not exist: the tests recorded nothing", file=sys.stderr)
        return 1
    needles = {CANARY}
    recorded = collections.Counter()
    files = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith("needles."):
            with open(path, encoding="utf-8", errors="replace") as f:
                needles.update(line.strip() for line in f if len(line.strip()) >= 16)
        else:
            recorded[name.split(".", 1)[0]] += 1
            files.append(path)
    patterns = {}
    for needle in needles:
        for text in encodings(needle):
            patterns[text] = needle
    finds = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            content = f.read()
        # One substring search per pattern over the whole file; lines only for a find.
        for text in (t for t in patterns if t in content):
            needle = patterns[text]
            shown = needle if needle == CANARY else needle[:6] + "…"
            how = "as is" if text == needle else "base64-encoded"
            for number, line in enumerate(content.splitlines(), 1):
                if text in line:
                    finds.append(f"{path}:{number}: a secret ({shown}) {how}")
    print(f"secrets_shown: {len(needles)} secret(s) ({len(patterns)} patterns) searched in "
          f"{len(files)} recording(s): " + ", ".join(f"{k} {recorded[k]}" for k in KINDS))
    missing = [k for k in KINDS if recorded[k] == 0]
    if missing:
        print(f"secrets_shown: nothing recorded of: {', '.join(missing)}", file=sys.stderr)
        return 1
    if len(needles) < 2:
        print("secrets_shown: no registered secrets besides the canaries", file=sys.stderr)
        return 1
    for find in finds[:200]:
        print(find, file=sys.stderr)
    if finds:
        print(f"secrets_shown: {len(finds)} find(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
