#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A full device loses nothing that was accepted (issue 12).

Several processes fill a small image until ENOSPC with creates, appends
(half of them large: files grow past 4,000 bytes into extents files),
truncates (up and down), xattrs and renames, each recording what the
filesystem accepted. Then df is checked against what can still be
written, the image is unmounted (the daemon must exit 0), remounted and
every accepted byte verified. Repeated with an epoch rmdir in the middle
(the space comes back and is used), and with the daemon killed at ENOSPC
after an fsync (everything before the fsync must be there).

TSLAB_FULL_MB sizes the image (default 48).
"""
import errno
import multiprocessing as mp
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, run  # noqa: E402

MB = int(os.environ.get("TSLAB_FULL_MB", "48"))
PROCS = 3
ENOSPC_STOP = 40  # ENOSPC answers before a process stops


def blob(rnd, n):
    return rnd.randbytes(n)


def worker(root, seed, out):
    """Fill ROOT until ENOSPC; put (files, xattrs, accepted, refused)."""
    rnd = random.Random(seed)
    files, xattrs = {}, {}
    accepted = refused = 0
    seq = 0
    os.makedirs(root, exist_ok=True)
    while refused < ENOSPC_STOP:
        op = rnd.randrange(10)
        names = list(files)
        try:
            if op < 5 or not names:  # create + write + close
                name = "f%06d" % seq
                seq += 1
                data = blob(rnd, rnd.randrange(1, 3000))
                fd = os.open(os.path.join(root, name), os.O_CREAT | os.O_WRONLY, 0o644)
                files[name] = b""
                try:
                    n = os.write(fd, data)
                    files[name] = data[:n]
                finally:
                    os.close(fd)
            elif op == 5:  # append (every other one large: extents files)
                name = rnd.choice(names)
                data = blob(rnd, rnd.randrange(1, 2000 if rnd.random() < 0.5 else 12000))
                fd = os.open(os.path.join(root, name), os.O_WRONLY | os.O_APPEND)
                try:
                    n = os.write(fd, data)
                    files[name] += data[:n]
                finally:
                    os.close(fd)
            elif op == 6:  # truncate up or down
                name = rnd.choice(names)
                size = rnd.randrange(0, 5000)
                os.truncate(os.path.join(root, name), size)
                old = files[name]
                files[name] = old[:size] + bytes(max(0, size - len(old)))
            elif op == 7:  # xattr
                name = rnd.choice(names)
                val = blob(rnd, rnd.randrange(1, 200))
                os.setxattr(os.path.join(root, name), "user.v", val)
                xattrs[name] = val
            else:  # rename to a new name
                name = rnd.choice(names)
                new = "r%06d" % seq
                seq += 1
                os.rename(os.path.join(root, name), os.path.join(root, new))
                files[new] = files.pop(name)
                if name in xattrs:
                    xattrs[new] = xattrs.pop(name)
            accepted += 1
        except OSError as e:
            if e.errno != errno.ENOSPC:
                out.put(("error", "%s: op %d: %s" % (root, op, e)))
                return
            refused += 1
    # The smallest create, until it too is refused: the device is full.
    while True:
        name = "s%06d" % seq
        seq += 1
        try:
            # os.write, not a buffered file: a buffered write refused with
            # ENOSPC is written again at close(), where it may succeed once
            # another worker freed space, and the model would say empty
            fd = os.open(os.path.join(root, name), os.O_CREAT | os.O_WRONLY, 0o644)
            files[name] = b""
            try:
                files[name] = b"s"[:os.write(fd, b"s")]
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                out.put(("error", "%s: small create: %s" % (root, e)))
                return
            break
        accepted += 1
    out.put((root, files, xattrs, accepted, refused))


def fill(m, roots, seed):
    q = mp.Queue()
    ps = [mp.Process(target=worker, args=(m.p(r), seed + i, q))
          for i, r in enumerate(roots)]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    state = {}
    ops = 0
    for r in res:
        if r[0] == "error":
            raise Fail(r[1])
        root, files, xattrs, accepted, _ = r
        state[root] = (files, xattrs)
        ops += accepted
    return state, ops


def verify(m, state):
    """Every accepted byte and xattr is there; returns (bytes, lost, bytes
    verified in files of more than 4,000 bytes)."""
    nbytes = lost = large = 0
    for root, (files, xattrs) in state.items():
        root = m.p(os.path.basename(os.path.dirname(root)), os.path.basename(root))
        for name, data in files.items():
            p = os.path.join(root, name)
            try:
                with open(p, "rb") as f:
                    got = f.read()
            except OSError:
                got = None
            if got != data:
                lost += 1
                if lost <= 5:
                    diff = None if got is None else next(
                        (i for i in range(min(len(got), len(data))) if got[i] != data[i]),
                        min(len(got), len(data)))
                    print("LOST %s: %s bytes, expected %d, first difference at %s" %
                          (p, None if got is None else len(got), len(data), diff))
            else:
                nbytes += len(data)
                if len(data) > 4000:
                    large += len(data)
            if name in xattrs:
                try:
                    ok = os.getxattr(p, "user.v") == xattrs[name]
                except OSError:
                    ok = False
                if not ok:
                    lost += 1
                else:
                    nbytes += len(xattrs[name])
    return nbytes, lost, large


def df_avail(m):
    v = os.statvfs(m.path)
    return v.f_bavail * v.f_frsize


def df_fits(m, where, total):
    """While df says a file fits, it does: write files of 1,000 bytes into
    WHERE until df says no more; every one must succeed. Returns the payload
    written and what df said at the start."""
    start = df_avail(m)
    written = 0
    i = 0
    data = b"d" * 1000
    while df_avail(m) >= 2 * 4096:
        p = os.path.join(where, "df%06d" % i)
        try:
            with open(p, "wb") as f:
                f.write(data)
        except OSError as e:
            raise Fail("df said %d bytes available, a 1,000-byte file failed: %s" %
                       (df_avail(m), e))
        total[p] = data
        written += len(data)
        i += 1
    return written, start


def scenario(t, name, rmdir_middle=False, kill=False):
    img = t.mkfs(name=name, size="%dM" % MB, zone="1M")
    m = t.mount(img)
    v = os.statvfs(m.path)
    print("%s: df at start: %d KiB total, %d KiB available" %
          (name, v.f_blocks * v.f_frsize // 1024, v.f_bavail * v.f_frsize // 1024))
    roots = ["E%d/w" % i for i in range(PROCS)]
    state, ops = fill(m, roots, 1)
    # Put everything (a file truncated down then costs less than it had
    # reserved), fill with the smallest files until one is refused: it
    # needed less than a 4 KiB block, so df says 0.
    fd = os.open(m.p("E0", "w"), os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    files0 = state[m.p("E0/w")][0]
    k = 0
    while True:
        try:
            with open(m.p("E0", "w", "z%06d" % k), "wb"):
                files0["z%06d" % k] = b""
            k += 1
        except OSError as e:
            check(e.errno == errno.ENOSPC, "small create: %s" % e)
            break
    check(df_avail(m) == 0, "after ENOSPC df still says %d bytes" % df_avail(m))
    if rmdir_middle:
        # drop the first epoch: its space comes back and is used again
        for f in os.listdir(m.p("E0", "w")):
            os.unlink(m.p("E0", "w", f))
        os.rmdir(m.p("E0", "w"))
        os.rmdir(m.p("E0"))
        del state[m.p("E0/w")]
        freed = df_avail(m)
        check(freed > 1 << 20, "df after the rmdir: %d bytes available" % freed)
        # df right after the rmdir: everything it says fits does fit
        os.makedirs(m.p("E8", "w"))
        dfs = {}
        written, said = df_fits(m, m.p("E8", "w"), dfs)
        state[m.p("E8/w")] = ({os.path.basename(p): d for p, d in dfs.items()}, {})
        print("%s: after the rmdir df said %d bytes available; %d bytes of "
              "1,000-byte files then written (%.1f%%; the rest is record and "
              "page overhead), every one accepted" %
              (name, said, written, 100.0 * written / max(said, 1)))
        for f in os.listdir(m.p("E8", "w"))[: len(dfs) // 2]:
            os.unlink(m.p("E8", "w", f))
            del state[m.p("E8/w")][0][f]
        more, ops2 = fill(m, ["E9/w"], 7)
        state.update(more)
        ops += ops2 + len(dfs)
        print("%s: half of them removed, then %d more ops accepted" % (name, ops2))
    if kill:
        fd = os.open(m.p("E1", "w"), os.O_RDONLY)
        os.fsync(fd)  # everything accepted so far is durable now
        os.close(fd)
        m.kill()
    else:
        m.umount()  # fails unless the daemon exits 0
    m = t.mount(img)
    nbytes, lost, large = verify(m, state)
    nfiles = sum(len(f) for f, _ in state.values())
    nlarge = sum(1 for f, _ in state.values() for d in f.values() if len(d) > 4000)
    print("%s: %d operations accepted, %d files, %d bytes verified, %d lost; "
          "%d files over 4,000 bytes (extents), %d of those bytes" %
          (name, ops, nfiles, nbytes, lost, nlarge, large))
    check(nlarge > 0, "%s: no file over 4,000 bytes was written" % name)
    check(lost == 0, "%s: %d accepted files or xattrs lost" % (name, lost))
    m.umount()
    return ops, nbytes


def main(t):
    scenario(t, "full")
    scenario(t, "rmdir", rmdir_middle=True)
    scenario(t, "kill", kill=True)


if __name__ == "__main__":
    run(main)
