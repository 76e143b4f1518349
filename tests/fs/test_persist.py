#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Persistence: N files (default 100,000) of random sizes 16 B - 8 KiB spread
over several epochs, clean unmount, remount, every byte compared; then a
second remount after unlinking and overwriting a part of them.
Optional argument after TSLABFS MKFS: the number of files."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, content, run  # noqa: E402

EPOCHS = 10


def size_of(i):
    return random.Random(i * 7919).randint(16, 8192)


def name_of(i):
    return "ep%02d" % (i % EPOCHS), "file-%06d" % i


def write_all(m, n, ver_of):
    for e in range(EPOCHS):
        os.makedirs(m.p("ep%02d" % e), exist_ok=True)
    t0 = time.time()
    nbytes = 0
    for i in range(n):
        d, f = name_of(i)
        data = content(f, ver_of(i), size_of(i))
        fd = os.open(m.p(d, f), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.close(fd)
        nbytes += len(data)
    dt = time.time() - t0
    print("wrote %d files, %.1f MB in %.1f s (%.0f files/s)" % (n, nbytes / 1e6, dt, n / dt))


def verify_all(m, n, ver_of, deleted=frozenset()):
    t0 = time.time()
    checked = 0
    for e in range(EPOCHS):
        names = set(os.listdir(m.p("ep%02d" % e)))
        want = {name_of(i)[1] for i in range(e, n, EPOCHS) if i not in deleted}
        if names != want:
            raise Fail("epoch %d lists %d names, expected %d (missing %s, extra %s)" % (
                e, len(names), len(want), sorted(want - names)[:5], sorted(names - want)[:5]))
    for i in range(n):
        if i in deleted:
            continue
        d, f = name_of(i)
        with open(m.p(d, f), "rb") as fh:
            got = fh.read()
        if got != content(f, ver_of(i), size_of(i)):
            raise Fail("%s/%s: content differs (%d bytes, expected %d)" % (
                d, f, len(got), size_of(i)))
        checked += 1
    dt = time.time() - t0
    print("verified %d files byte for byte in %.1f s" % (checked, dt))
    return checked


def main(t):
    n = int(t.args[0]) if t.args else 100000
    img = t.mkfs(size="4G", zone="64M")
    m = t.mount(img)
    write_all(m, n, lambda i: 0)
    t0 = time.time()
    m.umount()
    print("unmount (flush) took %.1f s" % (time.time() - t0))

    t0 = time.time()
    m = t.mount(img)
    print("remount (recovery of %d files) took %.1f s" % (n, time.time() - t0))
    verify_all(m, n, lambda i: 0)

    # unlink every 7th file, overwrite every 5th, then remount again
    deleted = set(range(0, n, 7))
    for i in deleted:
        d, f = name_of(i)
        os.unlink(m.p(d, f))
    for i in range(1, n, 5):
        if i in deleted:
            continue
        d, f = name_of(i)
        with open(m.p(d, f), "wb") as fh:
            fh.write(content(f, 1, size_of(i)))
    m.umount()
    m = t.mount(img)
    ver = lambda i: 1 if (i % 5 == 1) else 0  # noqa: E731
    checked = verify_all(m, n, ver, deleted)
    check(checked == n - len(deleted), "every surviving file checked")
    m.umount()


if __name__ == "__main__":
    run(main)
