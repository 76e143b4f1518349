#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Crash test: SIGKILL the daemon at many points while a writer ingests
fsync'd and unsynced files (creates, and atomic replaces by rename; sizes
from 16 B to 64 KiB, so both single-record and multi-chunk extents files)
and appends to a log file (fsync'd now and then), then remount and check
that
  - every append log holds a prefix of what was appended, at least as long
    as the last length whose fsync returned;
  - every file whose fsync returned is present with that content or a
    later one written to the same name (losses must be 0);
  - every present file holds exactly one content that was written, whole
    (never torn), or is empty because the crash came between its create
    and its write (counted separately).
Optional argument after TSLABFS MKFS: the number of kill points.
TSLAB_CRASH_SEED (default 1234) picks the writers' seeds and kill delays."""
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
import json, os, random, sys
sys.path.insert(0, sys.argv[1])
from tslabtest import content
mnt, log, seed, round_ = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
r = random.Random(seed)
lf = open(log, "a", buffering=1)
def note(kind, name, ver, size):
    lf.write(json.dumps([kind, name, ver, size]) + "\n")
try:
    # Everything relative to a descriptor of the FUSE root: once the daemon
    # is killed and the mount detached, these calls fail instead of writing
    # into the directory underneath.
    root = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    if os.fstat(root).st_ino != 1:
        sys.exit("not the tslabfs root")
    for ep in range(3):
        try:
            os.mkdir("r%d-e%d" % (round_, ep), dir_fd=root)
        except FileExistsError:
            pass
    note("started", "", 0, 0)
    i = 0
    alog = "r%d-e0/applog" % round_
    afd = os.open(alog, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644, dir_fd=root)
    astream = content("applog", round_, 1 << 21)
    alen = 0
    while True:
        if alen < len(astream) and r.random() < 0.3:  # append, multi-chunk at times
            n = min(r.choice([100, 4000, 4096, 9000, 30000]), len(astream) - alen)
            os.write(afd, astream[alen:alen + n])
            alen += n
            if r.random() < 0.3:
                os.fsync(afd)
                note("asynced", alog, round_, alen)
        ep = "r%d-e%d" % (round_, i % 3)
        if i > 20 and r.random() < 0.2:       # replace an older file atomically
            j = r.randrange(i)
            name = "%s/f%06d" % ("r%d-e%d" % (round_, j % 3), j)
            ver = 1000 + i
        else:
            name = "%s/f%06d" % (ep, i)
            ver = 0
        size = r.randint(16, 6000) if r.random() < 0.6 else r.randint(6000, 65536)
        sync = r.random() < 0.3
        note("intent", name, ver, size)
        data = content(os.path.basename(name), ver, size)
        path = name
        tmp = path + ".tmp%d" % ver if ver else path
        if ver:
            note("intent", name + ".tmp%d" % ver, ver, size)
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644, dir_fd=root)
        os.write(fd, data)
        if sync:
            os.fsync(fd)
        os.close(fd)
        if ver:
            os.rename(tmp, path, src_dir_fd=root, dst_dir_fd=root)
            if sync:
                dfd = os.open(os.path.dirname(path), os.O_RDONLY, dir_fd=root)
                os.fsync(dfd)
                os.close(dfd)
        if sync:
            note("synced", name, ver, size)
        i += 1
except OSError:
    pass
'''


def load_log(path):
    intents, synced = {}, {}
    asynced = {}
    with open(path) as f:
        for line in f:
            try:
                kind, name, ver, size = json.loads(line)
            except ValueError:
                continue  # the writer may die mid-line
            if kind == "started":
                continue
            if kind == "asynced":
                asynced[name] = (ver, max(size, asynced.get(name, (0, 0))[1]))
                continue
            if kind == "intent":
                intents.setdefault(name, {})[ver] = size
            else:
                synced[name] = max(ver, synced.get(name, -1))
    return intents, synced, asynced


def verify_applog(name, data, asynced, stats):
    rnd, synced_len = asynced.get(name, (int(name.split("-")[0][1:]), 0))
    stream = content("applog", rnd, 1 << 21)
    if data != stream[:len(data)]:
        stats["torn"] += 1
        raise Fail("%s: %d bytes that are not a prefix of the appends" % (name, len(data)))
    if len(data) < synced_len:
        stats["fsync_lost"] += 1
        raise Fail("%s: %d bytes, %d were fsync'd" % (name, len(data), synced_len))
    stats["applog_bytes"] += len(data)
    stats["applog_checked"] += 1


def missing_detail(m, name, intents, present):
    """What else is known about a missing name, for the failure message."""
    p = os.path.join(m.path, name)
    try:
        st = os.lstat(p)
        look = "lookup finds it (ino %#x, %d bytes) but the listing does not" % (
            st.st_ino, st.st_size)
    except OSError as e:
        look = "lookup: %s" % e.strerror
    d = os.path.dirname(name)
    near = sorted(n for n in present if n.startswith(name + ".tmp"))
    listed = sum(1 for n in present if os.path.dirname(n) == d)
    return "\n  %s; versions written: %s; tmp names present: %s; %d names listed in %s" % (
        look, sorted(intents.get(name, {}).items()), near or "none", listed, d)


def verify(m, intents, synced, stats, asynced):
    present = {}
    for root, dirs, files in os.walk(m.path):
        for f in files:
            p = os.path.join(root, f)
            present[os.path.relpath(p, m.path)] = p
    for name, p in present.items():
        with open(p, "rb") as fh:
            data = fh.read()
        if os.path.basename(name) == "applog":
            verify_applog(name, data, asynced, stats)
            continue
        vers = intents.get(name)
        if vers is None:
            raise Fail("unexpected file %s" % name)
        base = os.path.basename(name).split(".tmp")[0]
        ok = [v for v, size in vers.items() if data == content(base, v, size)]
        if ok:
            stats["files_ok"] += 1
            stats["extents_files"] += len(data) > 4000
        elif data == b"":
            stats["empty_unsynced"] += 1
            if name in synced:
                raise Fail("fsync'd file %s is empty after the crash" % name)
        else:
            stats["torn"] += 1
            raise Fail("%s holds %d bytes that match no written version" % (name, len(data)))
        stats["files_checked"] += 1
    for name, ver in synced.items():
        if name not in present:
            stats["fsync_lost"] += 1
            raise Fail("fsync'd file %s (version %d) missing after the crash%s" % (
                name, ver, missing_detail(m, name, intents, present)))
        with open(present[name], "rb") as fh:
            data = fh.read()
        base = os.path.basename(name)
        if not any(data == content(base, v, s) for v, s in intents[name].items() if v >= ver):
            stats["fsync_lost"] += 1
            raise Fail("fsync'd file %s lost version %d" % (name, ver))
        stats["fsync_checked"] += 1
    stats["unsynced_missing"] = sum(1 for n in intents if n not in present and n not in synced
                                    and ".tmp" not in n)


def main(t):
    rounds = int(t.args[0]) if t.args else 25
    img = t.mkfs(size="2G", zone="32M")
    here = os.path.dirname(os.path.abspath(__file__))
    log = os.path.join(t.dir, "writer.log")
    open(log, "w").close()
    rng = random.Random(int(os.environ.get("TSLAB_CRASH_SEED", "1234")))
    stats = dict(kill_points=0, files_checked=0, files_ok=0, empty_unsynced=0, torn=0,
                 fsync_checked=0, fsync_lost=0, unsynced_missing=0, applog_checked=0,
                 applog_bytes=0, extents_files=0)
    delays = []
    for rnd in range(rounds):
        m = t.mount(img, opts="commit=1")
        w = subprocess.Popen([sys.executable, "-c", WRITER, here, m.path, log,
                              str(rng.randrange(1 << 30)), str(rnd)])
        delay = rng.choice([0.01, 0.05, 0.2]) + rng.random() * 1.5
        delays.append(round(delay, 2))
        started = "[\"started\", \"\", 0, 0]"
        for _ in range(3000):  # the kill point counts from the writer's start
            with open(log) as f:
                if f.read().count(started) > rnd:
                    break
            if w.poll() is not None:
                raise Fail("writer exited early")
            time.sleep(0.01)
        time.sleep(delay)
        m.kill()
        stats["kill_points"] += 1
        try:
            w.wait(30)
        except subprocess.TimeoutExpired:
            w.send_signal(signal.SIGKILL)
            w.wait()
        intents, synced, asynced = load_log(log)
        m = t.mount(img, opts="commit=1")
        round_stats = dict(stats, files_checked=0, files_ok=0, empty_unsynced=0,
                           fsync_checked=0, applog_checked=0, applog_bytes=0,
                           extents_files=0)
        verify(m, intents, synced, round_stats, asynced)
        for k in ("files_checked", "files_ok", "empty_unsynced", "fsync_checked",
                  "applog_checked", "applog_bytes", "extents_files"):
            stats[k] += round_stats[k]
        stats["unsynced_missing"] = round_stats["unsynced_missing"]
        m.umount()
    print("kill delays (s):", delays)
    print("crash stats:", json.dumps(stats))
    check(stats["fsync_lost"] == 0 and stats["torn"] == 0, "no losses, nothing torn")


if __name__ == "__main__":
    run(main)
