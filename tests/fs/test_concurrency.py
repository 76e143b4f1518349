#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Concurrency: writer processes in different epochs and in the same epoch,
readers and renamers running while whole epochs are dropped; afterwards
every file that was not dropped is intact, before and after a remount."""
import errno
import os
import random
import sys
import time
from multiprocessing import Process, Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, content, run  # noqa: E402

N = 1500


def writer(mnt, epoch, tag, q):
    try:
        for i in range(N):
            f = "%s-%05d" % (tag, i)
            with open(os.path.join(mnt, epoch, f), "wb") as fh:
                fh.write(content(f, 0, 16 + (i * 37) % 3000))
            if i % 100 == 0:
                os.rename(os.path.join(mnt, epoch, f), os.path.join(mnt, epoch, f + ".r"))
                os.rename(os.path.join(mnt, epoch, f + ".r"), os.path.join(mnt, epoch, f))
        q.put(None)
    except Exception as e:  # report to the parent
        q.put("%s/%s: %r" % (epoch, tag, e))


def reader(mnt, epochs, q, stop_at):
    bad = 0
    reads = 0
    r = random.Random(os.getpid())
    while time.time() < stop_at:
        e = r.choice(epochs)
        i = r.randrange(300)
        f = "x-%05d" % i
        try:
            with open(os.path.join(mnt, e, f), "rb") as fh:
                data = fh.read()
            reads += 1
            if data != content(f, 0, 100 + i):
                bad += 1
        except OSError as ex:
            if ex.errno not in (errno.ENOENT, errno.ESTALE):
                q.put("reader: %r" % ex)
                return
    q.put(None if bad == 0 else "reader saw %d wrong contents in %d reads" % (bad, reads))


def verify(m, plan):
    for epoch, tags in plan.items():
        names = set(os.listdir(m.p(epoch)))
        for tag in tags:
            for i in range(N):
                f = "%s-%05d" % (tag, i)
                if f not in names:
                    raise Fail("%s/%s missing" % (epoch, f))
                with open(m.p(epoch, f), "rb") as fh:
                    if fh.read() != content(f, 0, 16 + (i * 37) % 3000):
                        raise Fail("%s/%s differs" % (epoch, f))


def main(t):
    img = t.mkfs(size="1G", zone="16M")
    m = t.mount(img)
    plan = {"w1": ["a"], "w2": ["b"], "shared": ["c", "d", "e"]}
    for e in plan:
        os.mkdir(m.p(e))
    drops = ["d%d" % i for i in range(8)]
    for e in drops:
        os.mkdir(m.p(e))
        for i in range(300):
            f = "x-%05d" % i
            with open(m.p(e, f), "wb") as fh:
                fh.write(content(f, 0, 100 + i))
    q = Queue()
    procs = [Process(target=writer, args=(m.path, e, tag, q)) for e, tags in plan.items()
             for tag in tags]
    stop_at = time.time() + 8
    procs += [Process(target=reader, args=(m.path, drops, q, stop_at)) for _ in range(2)]
    t0 = time.time()
    for p in procs:
        p.start()
    for e in drops:  # drop epochs while readers read them and writers write
        time.sleep(0.5)
        os.rmdir(m.p(e))
    errs = [q.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    errs = [e for e in errs if e]
    if errs:
        raise Fail("; ".join(errs))
    print("%d writers x %d files + 2 readers + 8 drops in %.1f s" %
          (len(procs) - 2, N, time.time() - t0))
    check(m.proc.poll() is None, "daemon alive")
    for e in drops:
        check(not os.path.exists(m.p(e)), "dropped epoch %s gone" % e)
    verify(m, plan)
    m.umount()
    m = t.mount(img)
    verify(m, plan)
    check(sorted(os.listdir(m.path)) == sorted(plan), "only the kept epochs remain")
    m.umount()


if __name__ == "__main__":
    run(main)
