#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A reader concurrent with an overwriter sees, for every byte, a value
that was written there (issue 12): never zeros that no version held.

One process rewrites a small file over and over (O_TRUNC + write, or
ftruncate to a smaller size + pwrite); versions differ in size and every
version's bytes are non-zero. Reader processes read the whole file
(open/read/close) TSLAB_READS times in all (default 100,000) and count
every read holding a zero byte. Then, with readers still running, files
are shrunk, rewritten shorter and extended past a hole: the hole must read
as zeros (old bytes a racing read saw past the end must not surface).
"""
import multiprocessing as mp
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import check, run  # noqa: E402

READS = int(os.environ.get("TSLAB_READS", "100000"))
READERS = 2


def version(v):
    size = 1000 + (v * 7919) % 4000
    return bytes([v % 251 + 1]) * size


def writer(path, stop, done):
    v = 1
    while not stop.is_set():
        data = version(v)
        if v % 3:
            with open(path, "wb") as f:
                f.write(data)
        else:
            fd = os.open(path, os.O_WRONLY)
            # a shrink (never an extension: that would write zeros)
            os.ftruncate(fd, min(len(data), len(version(v - 1))) // 2)
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
        with open(p, "wb") as f:
            f.write(b"a" * 3500)
        with open(p, "wb") as f:
            f.write(b"b" * 3000)
        with open(p, "r+b") as f:
            f.seek(8192)
            f.write(b"c")
        with open(p, "rb") as f:
            b = f.read()
        if b != b"b" * 3000 + bytes(8192 - 3000) + b"c":
            bad += 1
    out.put(bad)


def main(t):
    img = t.mkfs(size="256M", zone="8M")
    m = t.mount(img)
    os.mkdir(m.p("ep"))
    path = m.p("ep", "hot")
    with open(path, "wb") as f:
        f.write(version(0))
    stop, q, done = mp.Event(), mp.Queue(), mp.Queue()
    w = mp.Process(target=writer, args=(path, stop, done))
    w.start()
    rs = [mp.Process(target=reader, args=(path, READS // READERS, q))
          for _ in range(READERS)]
    for r in rs:
        r.start()
    res = [q.get() for _ in rs]
    for r in rs:
        r.join()
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
    stop.set()
    versions = done.get()
    w.join()
    bad = sum(r[0] for r in res)
    print("concurrent reader: %d reads (%d empty, between a truncate and its "
          "write), %d versions written, %d reads with bytes never written" %
          (READS, sum(r[1] for r in res), versions, bad))
    print("hole check: 300 rewrites, %d wrong; its readers saw %d reads with "
          "bytes never written" % (hole_bad, sum(r[0] for r in hres)))
    check(bad == 0, "%d reads held bytes never written" % bad)
    check(hole_bad == 0, "%d files read old bytes in a hole" % hole_bad)
    m.umount()


if __name__ == "__main__":
    run(main)
