#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Idle pruning (-o idle_prune=SECONDS) keeps the filesystem correct: after
the daemon has dropped an idle epoch from the kernel's cache, every file of
it reads back whole, stat and readdir agree, descriptors opened before the
prune keep working, names can be created, renamed and removed, the epoch
is pruned again after new use, rmdir drops it, other epochs (one written
during the prunes) are untouched, and a remount sees the same tree. Also
with epoch_depth=2 (epochs one level below the root). Behaviour only: the
test waits for the daemon's log line of each prune, never for a time."""
import os
import re
import threading
import time

import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, content, run  # noqa: E402

WAIT_S = 180  # upper bound for a prune to happen on a loaded machine


def prunes(m, name):
    with open(m.log, errors="replace") as f:
        return len(re.findall(r"idle_prune: %s \(epoch" % re.escape(name), f.read()))


def wait_prunes(m, name, n):
    deadline = time.time() + WAIT_S
    while prunes(m, name) < n:
        if m.proc.poll() is not None:
            raise Fail("daemon exited")
        if time.time() > deadline:
            raise Fail("epoch %s not pruned %d times within %d s" % (name, n, WAIT_S))
        time.sleep(0.1)


def fill(m, rel, n, tag):
    want = {}
    os.makedirs(m.p(rel), exist_ok=True)
    for i in range(n):
        name = os.path.join(rel, "f%05d" % i)
        data = content(tag + name, 0, 50 + (i * 37) % 5000)
        with open(m.p(name), "wb") as f:
            f.write(data)
        want[name] = data
    return want


def check_tree(m, want, top):
    got = {}
    for root, dirs, files in os.walk(m.p(top)):
        for f in files:
            p = os.path.join(root, f)
            rel = os.path.relpath(p, m.path)
            st = os.stat(p)
            with open(p, "rb") as fh:
                data = fh.read()
            check(st.st_size == len(data), "%s: stat size %d, read %d" % (rel, st.st_size, len(data)))
            got[rel] = data
    mine = {k: v for k, v in want.items() if k == top or k.startswith(top + "/")}
    check(set(got) == set(mine), "%s: names differ: extra %s, missing %s" % (
        top, sorted(set(got) - set(mine))[:5], sorted(set(mine) - set(got))[:5]))
    for k, v in mine.items():
        check(got[k] == v, "%s: wrong content after prune" % k)


def depth1(t):
    img = t.mkfs(size="512M", zone="16M")
    m = t.mount(img, opts="idle_prune=1")
    want = fill(m, "e1", 300, "a")
    want.update(fill(m, "e1/sub", 100, "b"))
    want.update(fill(m, "e2", 50, "c"))
    for k in want:  # everything cached in the kernel
        os.stat(m.p(k))
    dfd = os.open(m.p("e1/sub"), os.O_RDONLY | os.O_DIRECTORY)
    ffd = os.open(m.p("e1/f00007"), os.O_RDWR)
    # A writer keeps e3 busy while e1 is pruned.
    stop = threading.Event()
    e3 = {}
    err = []

    def busy():
        try:
            i = 0
            os.mkdir(m.p("e3"))
            while not stop.is_set() or i < 20:
                name = "e3/g%05d" % i
                data = content(name, 0, 100)
                with open(m.p(name), "wb") as f:
                    f.write(data)
                e3[name] = data
                i += 1
        except OSError as e:
            err.append(e)

    th = threading.Thread(target=busy)
    th.start()
    wait_prunes(m, "e1", 1)
    stop.set()
    th.join()
    check(not err, "writer in e3 failed: %s" % err)
    want.update(e3)

    # After the prune: contents, sizes, names; descriptors from before it.
    check_tree(m, want, "e1")
    check(os.pread(ffd, 4096, 0) == want["e1/f00007"][:4096], "open fd reads old data")
    os.pwrite(ffd, b"Z", 0)
    want["e1/f00007"] = b"Z" + want["e1/f00007"][1:]
    os.close(ffd)
    check(sorted(os.listdir(dfd)) == sorted("f%05d" % i for i in range(100)),
          "readdir through a descriptor opened before the prune")
    fd = os.open("new-in-sub", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dfd)
    os.write(fd, b"created after prune")
    os.close(fd)
    os.close(dfd)
    want["e1/sub/new-in-sub"] = b"created after prune"
    os.rename(m.p("e1/f00001"), m.p("e1/renamed"))
    want["e1/renamed"] = want.pop("e1/f00001")
    os.unlink(m.p("e1/f00002"))
    del want["e1/f00002"]
    check_tree(m, want, "e1")

    # Used again: pruned again; then still correct, and rmdir drops it.
    held = os.open(m.p("e1"), os.O_RDONLY | os.O_DIRECTORY)  # keeps e1 cached
    wait_prunes(m, "e1", 2)
    os.close(held)
    check_tree(m, want, "e1")
    os.stat(m.p("e2/f00003"))
    os.rmdir(m.p("e1"))
    check(not os.path.exists(m.p("e1")), "e1 still there after rmdir")
    for k in [k for k in want if k.startswith("e1/")]:
        del want[k]
    check_tree(m, want, "e2")
    check_tree(m, want, "e3")
    m.umount()

    m = t.mount(img)
    check(sorted(os.listdir(m.path)) == ["e2", "e3"], "root after remount: %s" % os.listdir(m.path))
    check_tree(m, want, "e2")
    check_tree(m, want, "e3")
    m.umount()


def depth2(t):
    img = t.mkfs(name="img2", size="256M", zone="16M")
    m = t.mount(img, path=t.mountpoint("mnt2"), opts="idle_prune=1,epoch_depth=2")
    want = fill(m, "site/w1", 100, "d")
    held = os.open(m.p("site/w1"), os.O_RDONLY | os.O_DIRECTORY)
    for k in want:
        os.stat(m.p(k))
    wait_prunes(m, "w1", 1)
    os.close(held)
    check_tree(m, want, "site")
    os.rmdir(m.p("site/w1"))
    check(os.listdir(m.p("site")) == [], "site not empty after rmdir of its epoch")
    m.umount()


def main(t):
    depth1(t)
    depth2(t)
    print("idle pruning: correct after prunes at depth 1 and 2")


if __name__ == "__main__":
    run(main)
