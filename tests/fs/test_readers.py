#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A reader concurrent with an overwriter sees, for every byte, a value
that was written there (issue 12): never zeros that no version held.

One process rewrites a small file over and over (O_TRUNC + write, or
ftruncate to a smaller size + pwrite); versions differ in size and every
version's bytes are non-zero. The same again with versions of 4,100 to
16,100 bytes (extents files: chunks, old bytes kept past a shrink). Reader processes read the whole file
(open/read/close) TSLAB_READS times in all (default 100,000) and count
every read holding a zero byte. Then, with readers still running, files
are shrunk, rewritten shorter and extended past a hole (small and extents
files): the hole must read as zeros (old bytes a racing read saw past the end must not surface).
"""
import multiprocessing as mp
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import check, run  # noqa: E402

READS = int(os.environ.get("TSLAB_READS", "100000"))
READERS = 2


def version(v, big=False):
    size = (4100 + (v * 7919) % 12000) if big else (1000 + (v * 7919) % 4000)
    return bytes([v % 251 + 1]) * size


def writer(path, stop, done, big=False):
    v = 1
    while not stop.is_set():
        data = version(v, big)
        if v % 3:
            with open(path, "wb") as f:
                f.write(data)
        else:
            fd = os.open(path, os.O_WRONLY)
            # a shrink (never an extension: that would write zeros)
            os.ftruncate(fd, min(len(data), len(version(v - 1, big))) // 2)
            os.pwrite(fd, data, 0)
            os.close(fd)
        v += 1
    done.put(v - 1)


def reader(path, n, out, nonzero=None):
    """Bytes [0, NONZERO) (default: all) of any version are non-zero."""
    bad = empty = 0
    for _ in range(n):
        with open(path, "rb") as f:
            b = f.read()
        if not b:
            empty += 1
        elif b[:nonzero].count(0):
            bad += 1
    out.put((bad, empty))


def holes(m, out):
    """Shrink, rewrite shorter, extend past a hole; the hole reads zeros."""
    bad = 0
    for i in range(300):
        p = m.p("ep", "h%d" % (i % 4))
        # odd rounds: an extents file from the start
        big, short, hole = (9000, 6000, 20000) if i % 2 else (3500, 3000, 8192)
        with open(p, "wb") as f:
            f.write(b"a" * big)
        with open(p, "wb") as f:
            f.write(b"b" * short)
        with open(p, "r+b") as f:
            f.seek(hole)
            f.write(b"c")
        with open(p, "rb") as f:
            b = f.read()
        if b != b"b" * short + bytes(hole - short) + b"c":
            bad += 1
    out.put(bad)


def concurrent(m, name, big):
    """One writer, READERS readers of one file; returns (bad, empty, versions)."""
    path = m.p("ep", name)
    with open(path, "wb") as f:
        f.write(version(0, big))
    stop, q, done = mp.Event(), mp.Queue(), mp.Queue()
    w = mp.Process(target=writer, args=(path, stop, done, big))
    w.start()
    rs = [mp.Process(target=reader, args=(path, READS // READERS, q))
          for _ in range(READERS)]
    for r in rs:
        r.start()
    res = [q.get() for _ in rs]
    for r in rs:
        r.join()
    stop.set()
    versions = done.get()
    w.join()
    return sum(r[0] for r in res), sum(r[1] for r in res), versions


def main(t):
    img = t.mkfs(size="256M", zone="8M")
    m = t.mount(img)
    os.mkdir(m.p("ep"))
    bad, empty, versions = concurrent(m, "hot", False)
    xbad, xempty, xversions = concurrent(m, "big", True)
    q = mp.Queue()
    # Hole check while readers keep reading the same files.
    hq = mp.Queue()
    hr = [mp.Process(target=reader, args=(m.p("ep", "h%d" % k), 3000, q, 1))
          for k in range(2)]
    for i in range(4):
        with open(m.p("ep", "h%d" % i), "wb") as f:
            f.write(b"x")  # every version: non-zero first byte
    for r in hr:
        r.start()
    holes(m, hq)
    hole_bad = hq.get()
    for r in hr:
        r.join()
    hres = [q.get() for _ in hr]
    print("concurrent reader: %d reads (%d empty, between a truncate and its "
          "write), %d versions written, %d reads with bytes never written" %
          (READS, empty, versions, bad))
    print("concurrent reader, extents file: %d reads (%d empty), %d versions "
          "written, %d reads with bytes never written" %
          (READS, xempty, xversions, xbad))
    print("hole check: 300 rewrites, %d wrong; its readers saw %d reads with "
          "bytes never written" % (hole_bad, sum(r[0] for r in hres)))
    check(bad == 0, "%d reads held bytes never written" % bad)
    check(xbad == 0, "extents file: %d reads held bytes never written" % xbad)
    check(hole_bad == 0, "%d files read old bytes in a hole" % hole_bad)
    m.umount()


if __name__ == "__main__":
    run(main)
