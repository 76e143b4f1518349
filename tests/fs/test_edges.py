#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Edge cases that must answer as a Linux filesystem does (issue 12), and
objects reclaimed when their last name goes.

- timestamps outside the int64-nanosecond range clamp to its ends (never
  wrap), pre-1970 times keep their nanoseconds;
- 'user.' with an empty suffix: EINVAL;
- fsync on a descriptor of a dropped epoch: ESTALE, like read/fstat;
- a regular file as mountpoint, commit=-1: refused at start, exit 1;
- --help lists each option once;
- leaks: after a stress of files, directories with xattrs, rmdir and
  rename-replace of such directories, the objects of each epoch equal what
  its namespace holds, and a remount (whose recovery would free orphans)
  finds the same number.
"""
import errno
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, expect_errno, run  # noqa: E402


def timestamps(m):
    p = m.p("ep", "t")
    open(p, "w").close()
    cases = [
        (16725225600 * 10**9, 2**63 - 1),          # 2500-01-01: clamps to 2262
        (-11676096000 * 10**9, -2**63),            # 1600-01-01: clamps to 1677
        (-315619200 * 10**9 + 5 * 10**8, -315619200 * 10**9 + 5 * 10**8),
        (2**63 - 1, 2**63 - 1),                    # the last representable ns
        (4102444800 * 10**9 + 7, 4102444800 * 10**9 + 7),  # 2100, exact
    ]
    for given, want in cases:
        os.utime(p, ns=(given, given))
        st = os.stat(p)
        check(st.st_mtime_ns == want and st.st_atime_ns == want,
              "utime %d: stat says %d, expected %d" % (given, st.st_mtime_ns, want))
    return cases[-1][1]


def xattr_names(m):
    p = m.p("ep", "x")
    open(p, "w").close()
    expect_errno(errno.EINVAL, os.setxattr, p, "user.", b"v")
    expect_errno(errno.EINVAL, os.getxattr, p, "user.")
    expect_errno(errno.EINVAL, os.removexattr, p, "user.")
    os.setxattr(p, "user.a", b"v")
    check(os.getxattr(p, "user.a") == b"v", "user.a readable")


def stale_fsync(m):
    os.mkdir(m.p("gone"))
    with open(m.p("gone", "f"), "w") as f:
        f.write("data")
    fd = os.open(m.p("gone", "f"), os.O_RDWR)
    os.unlink(m.p("gone", "f"))  # epoch directories drop only when empty
    os.rmdir(m.p("gone"))
    expect_errno(errno.ESTALE, os.fsync, fd)
    expect_errno(errno.ESTALE, os.fstat, fd)
    os.close(fd)


def refusals(t, img):
    f = os.path.join(t.dir, "a-file")
    open(f, "w").close()
    r = subprocess.run([t.tslabfs, "-f", img, f], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 1 and "not a directory" in r.stderr,
          "file as mountpoint: rc %d, %r" % (r.returncode, r.stderr))
    for opt in ("commit=-1", "commit=0", "commit=5x", "epoch_depth=-1"):
        r = subprocess.run([t.tslabfs, "-f", "-o", opt, img, t.mountpoint("never")],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 1 and "must be" in r.stderr,
              "%s: rc %d, %r" % (opt, r.returncode, r.stderr))
    r = subprocess.run([t.tslabfs, "--help"], capture_output=True, text=True, timeout=60)
    lines = [ln.split()[1] for ln in (r.stdout + r.stderr).splitlines()
             if ln.strip().startswith("-o ") and len(ln.split()) > 1]
    dups = sorted({o for o in lines if lines.count(o) > 1})
    check(r.returncode == 0 and lines and not dups, "--help lists twice: %s" % dups)


def epoch_objects(m, ep):
    return int(os.getxattr(m.p(ep), "user.tslab.files"))


def namespace_objects(m, ep):
    """Objects the namespace of epoch EP names below its directory: one
    per file or directory, one per xattr."""
    n = 0
    for root, dirs, files in os.walk(m.p(ep)):
        for name in dirs + files:
            n += 1 + len(os.listxattr(os.path.join(root, name)))
    return n


def leak_stress(t, m, img):
    rnd = random.Random(12)
    eps = ["L0", "L1"]
    base = {}
    for ep in eps:
        os.mkdir(m.p(ep))
        base[ep] = epoch_objects(m, ep) - namespace_objects(m, ep)
    for i in range(600):
        ep = rnd.choice(eps)
        d = m.p(ep, "d%d" % rnd.randrange(40))
        op = rnd.randrange(6)
        try:
            if op == 0:
                os.makedirs(d, exist_ok=True)
                for k in range(rnd.randrange(1, 4)):
                    os.setxattr(d, "user.k%d" % k, b"x" * rnd.randrange(1, 300))
            elif op == 1:
                os.rmdir(d)
            elif op == 2:  # rename over an empty directory carrying xattrs
                src = m.p(ep, "d%d" % rnd.randrange(40))
                os.rename(src, d)
            elif op == 3:
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "f"), "w") as f:
                    f.write("y" * rnd.randrange(1, 5000))
                os.setxattr(os.path.join(d, "f"), "user.f", b"z")
            elif op == 4:
                os.unlink(os.path.join(d, "f"))
            else:
                os.removexattr(d, "user.k0")
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST,
                               errno.ENODATA, errno.EINVAL, errno.ENOTDIR):
                raise
    counts = {}
    for ep in eps:
        live, names = epoch_objects(m, ep), namespace_objects(m, ep)
        print("leak check %s: %d objects, namespace names %d (+%d fixed)" %
              (ep, live, names, base[ep]))
        check(live == names + base[ep], "%s: %d objects for %d names (+%d): %d leaked" %
              (ep, live, names, base[ep], live - names - base[ep]))
        counts[ep] = live
    m.umount()
    m = t.mount(img)
    for ep in eps:
        check(epoch_objects(m, ep) == counts[ep],
              "%s: %d objects after remount, %d before" %
              (ep, epoch_objects(m, ep), counts[ep]))
    return m


def main(t):
    img = t.mkfs(size="256M", zone="8M")
    refusals(t, img)
    m = t.mount(img)
    os.mkdir(m.p("ep"))
    last = timestamps(m)
    xattr_names(m)
    stale_fsync(m)
    m = leak_stress(t, m, img)
    st = os.stat(m.p("ep", "t"))
    check(st.st_mtime_ns == last, "timestamp after remount: %d" % st.st_mtime_ns)
    m.umount()


if __name__ == "__main__":
    run(main)
