#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Request economy: counts the FUSE requests (from the daemon's -d log)
that common small-file operations cost, prints them and fails when a
synchronous request appears on a hot path:
  create + write + close    LOOKUP + CREATE + WRITE (+ the kernel's
                            GETXATTR security.capability per write(),
                            RELEASE asynchronous); no OPEN, FLUSH, GETATTR
  stat of a cached file     no request
  read of a cached file     no READ (page cache, keep_cache)"""
import collections
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import check, run  # noqa: E402

OPCODE = re.compile(r"opcode: (\w+)")


def requests_of(m, fn, settle=True):
    os.sync()
    time.sleep(0.5)
    with open(m.log, "rb") as f:
        f.seek(0, 2)
        start = f.tell()
    fn()
    if settle:  # let writeback and asynchronous releases arrive
        os.sync()
        time.sleep(1.0)
    with open(m.log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    return collections.Counter(OPCODE.findall(text))


def main(t):
    img = t.mkfs(size="256M", zone="8M")
    m = t.mount(img, debug=True)
    os.mkdir(m.p("e"))
    os.stat(m.p("e"))

    def create():
        for i in range(10):
            fd = os.open(m.p("e", "f%d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, b"x" * 100)
            os.close(fd)

    c = requests_of(m, create)
    print("10 x create+write+close:", dict(c))
    check(c["CREATE"] == 10 and c["LOOKUP"] <= 10, "one LOOKUP + one CREATE per file")
    for op in ("OPEN", "FLUSH", "GETATTR", "FSYNC", "SETATTR"):
        check(c[op] == 0, "no %s on create+write+close (%d)" % (op, c[op]))
    check(c["WRITE"] <= 10, "WRITEs batched: %d" % c["WRITE"])

    c = requests_of(m, lambda: [os.stat(m.p("e", "f%d" % i)) for i in range(10)], False)
    print("10 x stat right after writing (the kernel invalidated size/mtime):", dict(c))
    check(c["GETATTR"] <= 10 and c["LOOKUP"] == 0, "at most one GETATTR per written file")
    c = requests_of(m, lambda: [os.stat(m.p("e", "f%d" % i)) for i in range(10)], False)
    print("10 x stat of cached files:", dict(c))
    check(sum(c.values()) == 0, "stat of a cached file costs no request")

    def readall():
        for i in range(10):
            with open(m.p("e", "f%d" % i), "rb") as f:
                check(f.read() == b"x" * 100, "content")

    c = requests_of(m, readall)
    print("10 x first open+read+close (data not in the page cache yet):", dict(c))
    c = requests_of(m, readall)
    print("10 x open+read+close of cached files:", dict(c))
    check(c["READ"] == 0, "cached read costs no READ (%d)" % c["READ"])
    check(c["FLUSH"] == 0, "no FLUSH on close after read")
    c = requests_of(m, readall)
    print("10 x open+read+close again (atime no longer invalid):", dict(c))
    check(c["READ"] == 0 and c["GETATTR"] == 0, "no READ/GETATTR on a cached read")

    c = requests_of(m, lambda: os.listdir(m.p("e")), False)
    print("listdir of 10 files:", dict(c))
    m.umount()


if __name__ == "__main__":
    run(main)
