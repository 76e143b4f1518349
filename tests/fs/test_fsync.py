#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Crash test for concurrent fsync (group commit): THREADS writer threads
each create, write, fsync and close their own files while the daemon is
SIGKILLed at a random point; after a remount every file whose fsync
returned must be present with exactly its content. Each thread mixes:
  - a new file in an existing epoch directory (fsync of the file must make
    its name durable too);
  - a new file in a directory the thread has just created and never
    fsync'd (the directory's creation must be durable with the file);
  - a replace: write NAME.tmp, fsync it, rename it over NAME, fsync NAME
    (the rename must be durable once that fsync returns);
and writes some files it never fsyncs, which must be absent, empty or
whole, never torn.
Rounds: argument after TSLABFS MKFS, or TSLAB_FSYNC_ROUNDS (default 6);
threads: TSLAB_FSYNC_THREADS (default 6)."""
import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, content, run  # noqa: E402

WRITER = r'''
import json, os, random, sys, threading
sys.path.insert(0, sys.argv[1])
from tslabtest import content
mnt, log, seed, rnd, nthreads = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
lf = open(log, "a", buffering=1)
lk = threading.Lock()
def note(kind, name, ver, size):
    with lk:
        lf.write(json.dumps([kind, name, ver, size]) + "\n")
        lf.flush()
# Relative to a descriptor of the FUSE root: after the kill and the detach
# these calls fail instead of writing into the directory underneath.
root = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
if os.fstat(root).st_ino != 1:
    sys.exit("not the tslabfs root")
ep = "r%d" % rnd
os.mkdir(ep, dir_fd=root)
def put(name, ver, size, sync):
    fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644, dir_fd=root)
    os.write(fd, content(os.path.basename(name).split(".tmp")[0], ver, size))
    if sync:
        os.fsync(fd)
    os.close(fd)
def worker(t):
    r = random.Random(seed * 1000 + t)
    i = 0
    try:
        while True:
            kind = r.random()
            size = r.choice([16, 100, 700, 4000, 9000])
            if kind < 0.45:                       # new file, fsync'd
                name = "%s/t%d-%06d" % (ep, t, i)
                note("intent", name, 0, size)
                put(name, 0, size, True)
                note("synced", name, 0, size)
            elif kind < 0.6:                      # new directory + file
                d = "%s/d%d-%06d" % (ep, t, i)
                os.mkdir(d, dir_fd=root)
                name = d + "/f"
                note("intent", name, 0, size)
                put(name, 0, size, True)
                note("synced", name, 0, size)
            elif kind < 0.8 and i > 0:            # atomic replace
                name = "%s/t%d-%06d" % (ep, t, r.randrange(i))
                ver = 1000 + i
                tmp = name + ".tmp%d" % ver
                note("intent", tmp, ver, size)
                note("intent", name, ver, size)
                put(tmp, ver, size, True)
                os.rename(tmp, name, src_dir_fd=root, dst_dir_fd=root)
                fd = os.open(name, os.O_RDONLY, dir_fd=root)
                os.fsync(fd)
                os.close(fd)
                note("synced", name, ver, size)
            else:                                 # never fsync'd
                name = "%s/t%d-%06d" % (ep, t, i)
                note("intent", name, 0, size)
                put(name, 0, size, False)
            i += 1
    except OSError:
        pass
note("started", "", 0, 0)
ths = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
for th in ths:
    th.start()
for th in ths:
    th.join()
'''


def load_log(path):
    intents, synced = {}, {}
    with open(path) as f:
        for line in f:
            try:
                kind, name, ver, size = json.loads(line)
            except ValueError:
                continue  # the writer may die mid-line
            if kind == "intent":
                intents.setdefault(name, {})[ver] = size
            elif kind == "synced":
                synced[name] = max(ver, synced.get(name, -1))
    return intents, synced


def verify(m, intents, synced, stats):
    present = {}
    for root, dirs, files in os.walk(m.path):
        for f in files:
            p = os.path.join(root, f)
            present[os.path.relpath(p, m.path)] = p
    for name, p in present.items():
        with open(p, "rb") as fh:
            data = fh.read()
        vers = intents.get(name)
        if vers is None:
            raise Fail("unexpected file %s" % name)
        base = os.path.basename(name).split(".tmp")[0]
        if any(data == content(base, v, size) for v, size in vers.items()):
            stats["files_ok"] += 1
        elif data == b"" and name not in synced:
            stats["empty_unsynced"] += 1
        else:
            raise Fail("%s holds %d bytes that match no written version" % (name, len(data)))
    for name, ver in synced.items():
        if name not in present:
            raise Fail("fsync'd file %s (version %d) missing after the crash" % (name, ver))
        with open(present[name], "rb") as fh:
            data = fh.read()
        base = os.path.basename(name)
        if not any(data == content(base, v, s) for v, s in intents[name].items() if v >= ver):
            raise Fail("fsync'd file %s lost version %d" % (name, ver))
        stats["fsync_checked"] += 1


def main(t):
    rounds = int(t.args[0]) if t.args else int(os.environ.get("TSLAB_FSYNC_ROUNDS", "6"))
    nthreads = int(os.environ.get("TSLAB_FSYNC_THREADS", "6"))
    img = t.mkfs(size="1G", zone="16M")
    here = os.path.dirname(os.path.abspath(__file__))
    log = os.path.join(t.dir, "writer.log")
    open(log, "w").close()
    rng = random.Random(4321)
    stats = dict(kill_points=0, files_ok=0, empty_unsynced=0, fsync_checked=0)
    delays = []
    started = "[\"started\", \"\", 0, 0]"
    for rnd in range(rounds):
        # commit=60: nothing reaches the device by the timer during a
        # round, only through the writers' fsyncs.
        m = t.mount(img, opts="commit=60")
        w = subprocess.Popen([sys.executable, "-c", WRITER, here, m.path, log,
                              str(rng.randrange(1 << 30)), str(rnd), str(nthreads)])
        delay = rng.choice([0.02, 0.1, 0.3]) + rng.random()
        delays.append(round(delay, 2))
        # The kill point counts from the writer's first fsync'd file, so
        # that every round checks something, however loaded the machine.
        first = "[\"synced\", \"r%d/" % rnd
        for _ in range(12000):
            with open(log) as f:
                text = f.read()
            if text.count(started) > rnd and first in text:
                break
            if w.poll() is not None:
                raise Fail("writer exited early (status %d)" % w.returncode)
            time.sleep(0.01)
        else:
            raise Fail("writer fsync'd nothing within 120 s")
        time.sleep(delay)
        m.kill()
        stats["kill_points"] += 1
        try:
            w.wait(60)
        except subprocess.TimeoutExpired:
            w.send_signal(signal.SIGKILL)
            w.wait()
        intents, synced = load_log(log)
        m = t.mount(img, opts="commit=60")
        verify(m, intents, synced, stats)
        m.umount()
    print("kill delays (s):", delays)
    print("fsync crash stats:", json.dumps(stats))
    check(stats["fsync_checked"] > 0, "some fsyncs returned before the kills")


if __name__ == "__main__":
    run(main)
