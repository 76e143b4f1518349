#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Epochs: rmdir of a non-empty epoch whose files the kernel has cached
(stat before, ENOENT after), other epochs untouched, space returned in
statfs, drop time vs epoch size, epoch_depth=2 and 0, and ENOSPC on a
small image that goes away after a drop."""
import errno
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, content, expect_errno, run  # noqa: E402


def fill(m, epoch, n, size=600):
    os.makedirs(m.p(epoch), exist_ok=True)
    for i in range(n):
        f = "f%06d" % i
        with open(m.p(epoch, f), "wb") as fh:
            fh.write(content(f, 0, size + i % 500))


def verify(m, epoch, n, size=600):
    check(len(os.listdir(m.p(epoch))) == n, "%s lists %d files" % (epoch, n))
    for i in range(n):
        f = "f%06d" % i
        with open(m.p(epoch, f), "rb") as fh:
            if fh.read() != content(f, 0, size + i % 500):
                raise Fail("%s/%s differs" % (epoch, f))


def drop_and_space(t):
    img = t.mkfs(size="1G", zone="16M")
    m = t.mount(img)
    for e in ("A", "B", "C"):
        fill(m, e, 3000)
    os.sync()
    for i in range(3000):  # cache every dentry and inode of A in the kernel
        os.stat(m.p("A", "f%06d" % i))
    fd = os.open(m.p("A", "f000001"), os.O_RDONLY)
    files_a = int(os.getxattr(m.p("A"), "user.tslab.files"))
    check(files_a >= 3000, "A holds its objects: %d" % files_a)
    v0 = os.statvfs(m.path)
    t0 = time.time()
    os.rmdir(m.p("A"))
    print("rmdir of a 3000-file epoch: %.2f ms" % ((time.time() - t0) * 1e3))
    expect_errno(errno.ENOENT, os.stat, m.p("A"))
    for i in range(0, 3000, 97):
        expect_errno(errno.ENOENT, os.stat, m.p("A", "f%06d" % i))
    try:
        os.read(fd, 10)  # page cache may still answer; must not crash
    except OSError as e:
        check(e.errno in (errno.ESTALE, errno.ENOENT, errno.EIO), "read on dropped fd")
    os.close(fd)
    v1 = os.statvfs(m.path)
    freed = (v1.f_bfree - v0.f_bfree) * v1.f_frsize
    print("space returned by the drop: %.2f MB (A held ~%.2f MB of payload)" %
          (freed / 1e6, 3000 * 850 / 1e6))
    check(freed > 0, "statfs free space grows after the drop")
    verify(m, "B", 3000)
    verify(m, "C", 3000)
    os.mkdir(m.p("A"))  # the name is free again, as a new, empty epoch
    check(os.listdir(m.p("A")) == [], "recreated epoch is empty")
    m.umount()
    m = t.mount(img)
    check(os.listdir(m.p("A")) == [], "dropped files stay gone after remount")
    verify(m, "B", 3000)
    m.umount()


def drop_cost(t):
    img = t.mkfs(name="cost", size="2G", zone="32M")
    m = t.mount(img)
    times = {}
    for n in (1000, 30000):
        e = "E%d" % n
        fill(m, e, n, size=100)
        t0 = time.time()
        os.rmdir(m.p(e))
        times[n] = time.time() - t0
    print("rmdir time seen by the caller (includes the kernel pruning its cached "
          "dentries): 1000 files %.2f ms, 30000 files %.2f ms" %
          (times[1000] * 1e3, times[30000] * 1e3))
    m.umount()
    daemon = dict(re.findall(r"dropped epoch directory '(E\d+)' in (\d+) us", m.read_log()))
    print("drop time inside the daemon: 1000 files %s us, 30000 files %s us" %
          (daemon.get("E1000"), daemon.get("E30000")))


def depths(t):
    img = t.mkfs(name="depth", size="256M", zone="8M")
    m = t.mount(img, opts="epoch_depth=2")
    os.makedirs(m.p("2026", "11-21"))
    fill(m, os.path.join("2026", "11-21"), 10)
    check("user.tslab.files" not in os.listxattr(m.p("2026")), "depth 1 is no epoch")
    check("user.tslab.files" in os.listxattr(m.p("2026", "11-21")), "depth 2 is an epoch")
    os.rmdir(m.p("2026", "11-21"))
    write = m.p("2026", "x")
    with open(write, "wb") as fh:
        fh.write(b"x")
    expect_errno(errno.ENOTEMPTY, os.rmdir, m.p("2026"))
    m.umount()
    m = t.mount(img, opts="epoch_depth=0")
    os.makedirs(m.p("plain", "sub"))
    fill(m, "plain", 5)
    check("user.tslab.files" not in os.listxattr(m.p("plain")), "epoch_depth=0: no epochs")
    expect_errno(errno.ENOTEMPTY, os.rmdir, m.p("plain"))
    m.umount()


def enospc(t):
    img = t.mkfs(name="small", size="96M", zone="4M")
    m = t.mount(img)
    os.mkdir(m.p("fill"))
    n = 0
    err = None
    data = b"z" * 4000
    while n < 100000:
        try:
            with open(m.p("fill", "f%06d" % n), "wb") as fh:
                fh.write(data)
            n += 1
        except OSError as e:
            err = e.errno
            break
    print("small image: ENOSPC after %d files of 4000 B" % n)
    check(err == errno.ENOSPC, "ENOSPC when full (got %r after %d files)" % (err, n))
    # The rule (slab_space_reserve): a change is refused when its cost does
    # not fit. A 4000-byte file no longer fits; smaller objects may. Create
    # the smallest files until one is refused: a directory of exactly the
    # same cost (same parent, same name length) is refused too.
    k = 0
    while True:
        try:
            open(m.p("fill", "e%06d" % k), "wb").close()
            k += 1
        except OSError as e:
            check(e.errno == errno.ENOSPC, "small create: %s" % e)
            break
    print("then %d empty files" % k)
    expect_errno(errno.ENOSPC, os.mkdir, m.p("fill", "m000000"))
    os.rmdir(m.p("fill"))
    time.sleep(0.5)
    os.mkdir(m.p("after"))
    for i in range(min(n // 2, 5000)):
        with open(m.p("after", "g%06d" % i), "wb") as fh:
            fh.write(data)
    check(m.proc.poll() is None, "daemon alive after ENOSPC")
    m.umount()
    m = t.mount(img)
    check(len(os.listdir(m.p("after"))) == min(n // 2, 5000), "files written after the drop")
    m.umount()


def main(t):
    drop_and_space(t)
    drop_cost(t)
    depths(t)
    enospc(t)


if __name__ == "__main__":
    run(main)
