#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Request economy: counts the FUSE requests (from the daemon's -d log)
that common small-file operations cost, prints them and fails when a
synchronous request appears on a hot path. The daemon answers OPEN with
ENOSYS (FUSE_CAP_NO_OPEN_SUPPORT): after the first open() the kernel sends
no OPEN, RELEASE or FLUSH any more; the daemon makes that first open itself
right after the first CREATE of a mount (the no_open probe). Then:
  create + write + close    LOOKUP + CREATE + WRITE; no OPEN, RELEASE,
  (O_WRONLY)                FLUSH, GETATTR, and no GETXATTR (the file is
                            written with direct I/O, which skips the
                            kernel's security.capability check)
  stat of a cached file     no request
  open + read + close of    no request at all
  a cached file
  open(O_TRUNC) + write +   SETATTR + WRITE + 2 GETXATTR (security.capability,
  close of a file last      before the truncate and before the write); no
  stat'ed                   OPEN, RELEASE, FLUSH
  the same, of a file last  SETATTR + GETXATTR + WRITE: with killpriv_v2
  written                   (fs/rawreq.c) the kernel remembers "nothing to
                            clear" (S_NOSEC) from the last write until the
                            SETATTR's reply refreshes the attributes
  10 write()s through an    10 WRITEs, no GETXATTR (the kernel asked once,
  open descriptor           before the first write after a refresh)
  unlink of a cached file   UNLINK
Without killpriv_v2 (a kernel that does not offer it: the daemon logs
"killpriv_v2:" when taken) every cached write and truncate costs a GETXATTR,
as before.
The counts are the same on both transports (suites integration and
integration-uring): FUSE over io_uring changes how requests travel, not
which ones the kernel sends."""
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


def requests_cached(m, fn, settle=True, tries=5):
    """requests_of(fn) with the files cached: fn runs once to warm the
    caches, then is measured. A FORGET in the window, or a LOOKUP (entries
    are valid for a day: a cached name needs none), shows that the kernel
    evicted the inodes meanwhile (memory pressure, or another process on
    the machine writing drop_caches, which can come during the settling
    time before the window, taking its FORGET with it), so the files were
    not cached: warm and measure again."""
    for _ in range(tries):
        fn()
        c = requests_of(m, fn, settle)
        if not (c["FORGET"] or c["BATCH_FORGET"] or c["LOOKUP"]):
            return c
        print("  inodes were evicted during the measurement, again:", dict(c))
    return c


def main(t):
    img = t.mkfs(size="256M", zone="8M")
    m = t.mount(img, debug=True)
    os.mkdir(m.p("e"))
    os.stat(m.p("e"))
    with open(m.p("e", "first"), "wb") as f:
        f.write(b"1")

    def first_open():
        fd = os.open(m.p("e", "first"), os.O_RDONLY)
        os.close(fd)

    c = requests_of(m, first_open)
    print("first open() of an existing file:", dict(c))
    # The daemon's no_open probe opened "first" right after its CREATE.
    check(c["OPEN"] == 0, "the kernel learned no_open from the probe (%d)" % c["OPEN"])

    def create():
        for i in range(10):
            fd = os.open(m.p("e", "f%d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, b"x" * 100)
            os.close(fd)

    c = requests_of(m, create)
    print("10 x create+write+close:", dict(c))
    check(c["CREATE"] == 10 and c["LOOKUP"] <= 10, "one LOOKUP + one CREATE per file")
    for op in ("OPEN", "FLUSH", "GETATTR", "FSYNC", "SETATTR", "RELEASE", "GETXATTR"):
        check(c[op] == 0, "no %s on create+write+close (%d)" % (op, c[op]))
    check(c["WRITE"] <= 10, "WRITEs batched: %d" % c["WRITE"])

    c = requests_of(m, lambda: [os.stat(m.p("e", "f%d" % i)) for i in range(10)], False)
    print("10 x stat right after writing (the kernel invalidated size/mtime):", dict(c))
    # A LOOKUP instead of the GETATTR when the kernel evicted the inode
    # meanwhile (another process dropping the caches).
    check(c["GETATTR"] + c["LOOKUP"] <= 10, "at most one GETATTR per written file")
    c = requests_cached(m, lambda: [os.stat(m.p("e", "f%d" % i)) for i in range(10)], False)
    print("10 x stat of cached files:", dict(c))
    check(sum(c.values()) == 0, "stat of a cached file costs no request")

    def readall():
        for i in range(10):
            fd = os.open(m.p("e", "f%d" % i), os.O_RDONLY)
            check(os.read(fd, 200) == b"x" * 100, "content")
            os.close(fd)

    c = requests_of(m, readall)
    print("10 x first open+read+close (data not in the page cache yet):", dict(c))
    check(c["OPEN"] == 0 and c["RELEASE"] == 0, "no OPEN/RELEASE")
    c = requests_of(m, readall)
    print("10 x open+read+close of cached files:", dict(c))
    check(c["READ"] == 0, "cached read costs no READ (%d)" % c["READ"])
    c = requests_cached(m, readall)
    print("10 x open+read+close again (atime no longer invalid):", dict(c))
    check(sum(c.values()) == 0, "a cached open+read+close costs no request")

    def overwrite():
        for i in range(10):
            fd = os.open(m.p("e", "f%d" % i), os.O_WRONLY | os.O_TRUNC)
            os.write(fd, b"%d" % i)
            os.close(fd)

    with open(m.log, errors="replace") as f:
        killpriv = any("tslabfs: killpriv_v2:" in ln for ln in f)
    print("killpriv_v2 taken:", killpriv)
    c = requests_of(m, overwrite)
    print("10 x open(O_TRUNC)+write+close (last stat'ed):", dict(c))
    for op in ("OPEN", "FLUSH", "RELEASE"):
        check(c[op] == 0, "no %s on overwrite (%d)" % (op, c[op]))
    check(c["SETATTR"] == 10 and c["WRITE"] == 10 and c["GETXATTR"] == 20,
          "overwrite: SETATTR + 2 GETXATTR + WRITE per file: %s" % dict(c))
    c = requests_cached(m, overwrite)
    print("10 x open(O_TRUNC)+write+close again (last written):", dict(c))
    gx = 10 if killpriv else 20
    check(c["SETATTR"] == 10 and c["WRITE"] == 10 and c["GETXATTR"] == gx,
          "rewrite: SETATTR + %d GETXATTR + WRITE per file: %s" % (gx // 10, dict(c)))
    check(set(c) <= {"SETATTR", "GETXATTR", "WRITE"}, "nothing else: %s" % dict(c))

    def appends():
        fd = os.open(m.p("e", "f0"), os.O_WRONLY | os.O_APPEND)
        for _ in range(10):
            os.write(fd, b"a")
        os.close(fd)

    c = requests_cached(m, appends)
    print("open + 10 x write() + close of a file last written:", dict(c))
    gx = 0 if killpriv else 10
    check(c["WRITE"] == 10 and c["GETXATTR"] == gx and set(c) <= {"WRITE", "GETXATTR"},
          "10 WRITEs and %d GETXATTR: %s" % (gx, dict(c)))

    c = requests_of(m, lambda: os.listdir(m.p("e")), False)
    print("listdir of 10 files:", dict(c))

    c = requests_of(m, lambda: [os.unlink(m.p("e", "f%d" % i)) for i in range(10)])
    print("10 x unlink:", dict(c))
    check(c["UNLINK"] == 10, "one UNLINK per file (%d)" % c["UNLINK"])
    # LOOKUP only if the kernel evicted a dentry meanwhile; FORGET follows
    # the unlink of an inode the kernel then drops.
    extra = set(c) - {"UNLINK", "LOOKUP", "FORGET", "BATCH_FORGET"}
    check(not extra, "nothing but UNLINK per unlink: %s" % sorted(extra))
    m.umount()


if __name__ == "__main__":
    run(main)
