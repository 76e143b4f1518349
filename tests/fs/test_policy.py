#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Epoch policy and control attributes (fs/policy.c):
- retention_space: an ingest of TSLAB_RETENTION_FACTOR (default 10) times
  the device size never fails; the oldest epochs are dropped (logged with
  their reason), the newest keep= epochs survive intact, and a remount
  shows exactly what was left;
- retention= and seal_idle= driven by a test clock (TSLAB_TEST_CLOCK_FILE)
  that the test moves; the test waits for the policy to act (bounded, no
  timing assertion);
- sealing by user.tslab.sealed: EROFS for every change, reads work, the
  state survives a remount, rmdir still drops it;
- user.tslab.drop, listxattr of the control names, the root's epoch table
  and zone map, and the permission check (only root or the owner)."""
import errno
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, content, expect_errno, run  # noqa: E402

WAIT_S = 180  # bound for waiting on the policy thread (it ticks every 0.5 s)


def wait_for(what, cond, m):
    deadline = time.time() + WAIT_S
    while not cond():
        if time.time() > deadline:
            raise Fail("policy did not %s within %d s:\n%s" % (what, WAIT_S, m.read_log()))
        time.sleep(0.1)


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def space_ingest(t):
    size_mb = 128
    factor = float(os.environ.get("TSLAB_RETENTION_FACTOR", "10"))
    img = t.mkfs(size="%dM" % size_mb, zone="2M")
    m = t.mount(img, opts="retention_space=70,keep=2")
    per_epoch, fsize = 32, 65536
    target = int(factor * size_mb * 2**20)
    total, e = 0, 0
    while total < target:
        d = m.p("w%05d" % e)
        os.mkdir(d)
        for i in range(per_epoch):
            name = "f%03d" % i
            write_file(os.path.join(d, name), content("%d/%s" % (e, name), 0, fsize))
            total += fsize
        e += 1
    left = sorted(os.listdir(m.path))
    dropped = e - len(left)
    print("retention_space: device %d MiB, ingested %d MiB in %d epochs, "
          "%d dropped, %d left, 0 ENOSPC" % (size_mb, total >> 20, e, dropped, len(left)))
    check(dropped >= int(factor) * 2, "only %d epochs dropped" % dropped)
    newest = ["w%05d" % (e - 2), "w%05d" % (e - 1)]
    for n in newest:
        check(n in left, "newest epoch %s was dropped (keep=2)" % n)
    check(left == sorted(left) and left[-1] == newest[-1], "left: %s" % left[-5:])
    # What is left is the newest epochs, in order, with every byte.
    first = int(left[0][1:])
    check(left == ["w%05d" % k for k in range(first, e)], "not a suffix: %s" % left[:5])
    log = m.read_log()
    check("reason: retention_space=70%" in log, "no drop logged:\n" + log[-2000:])
    m.umount()
    m = t.mount(img)
    check(sorted(os.listdir(m.path)) == left, "remount shows other epochs")
    for n in left:
        k = int(n[1:])
        for i in range(per_epoch):
            name = "f%03d" % i
            if read_file(m.p(n, name)) != content("%d/%s" % (k, name), 0, fsize):
                raise Fail("%s/%s differs after remount" % (n, name))
    m.umount()


class Clock:
    def __init__(self, t):
        self.path = os.path.join(t.dir, "clock")
        self.now = int(time.time())
        self.set(self.now)

    def set(self, v):
        self.now = v
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % v)
        os.rename(tmp, self.path)  # the daemon preads the path's fd: rewrite in place

    def advance(self, s):
        self.now += s
        with open(self.path, "r+") as f:
            f.write("%-20d\n" % self.now)


def clock_policies(t):
    img = t.mkfs(size="256M", zone="8M")
    clk = Clock(t)
    os.environ["TSLAB_TEST_CLOCK_FILE"] = clk.path
    try:
        m = t.mount(img, opts="retention=1h,seal_idle=10m,keep=1")
    finally:
        del os.environ["TSLAB_TEST_CLOCK_FILE"]
    for e in ("A", "B", "C"):
        os.mkdir(m.p(e))
        for i in range(20):
            write_file(m.p(e, "f%d" % i), content(e + str(i), 0, 300))
    check(int(os.getxattr(m.p("A"), "user.tslab.created")) == clk.now,
          "created is not the test clock")
    # 11 minutes without writes: all three are sealed, none dropped.
    clk.advance(11 * 60)
    wait_for("seal idle epochs",
             lambda: all(os.getxattr(m.p(e), "user.tslab.sealed") == b"1"
                         for e in ("A", "B", "C")), m)
    check(sorted(os.listdir(m.path)) == ["A", "B", "C"], "an epoch went early")
    expect_errno(errno.EROFS, write_file, m.p("A", "new"), b"x")
    # A fresh epoch, then two hours: A, B and C are past retention; keep=1
    # protects only the newest, D.
    os.mkdir(m.p("D"))
    write_file(m.p("D", "f"), b"d")
    clk.advance(2 * 3600)
    wait_for("drop A, B and C", lambda: sorted(os.listdir(m.path)) == ["D"], m)
    log = m.read_log()
    check(len(re.findall(r"dropped epoch directory '[ABC]' \(21 files, \d+ bytes, "
                         r"reason: retention=3600s", log)) == 3, "drops not logged:\n" + log)
    check(len(re.findall(r"sealed epoch \d+ \(seal_idle=600s", log)) >= 3,
          "seals not logged:\n" + log)
    check(read_file(m.p("D", "f")) == b"d", "D damaged")
    m.umount()


def as_user(uid, code):
    """Run python CODE as UID; returns its exit status (errno on OSError)."""
    prog = ("import os, sys\nos.setgid(%d)\nos.setuid(%d)\ntry:\n    %s\n"
            "except OSError as e:\n    sys.exit(e.errno)\nsys.exit(0)\n" % (uid, uid, code))
    return subprocess.run([sys.executable, "-c", prog]).returncode


def seal_and_control(t):
    img = t.mkfs(size="256M", zone="8M")
    os.chmod(t.dir, 0o755)  # mkdtemp's 0700 would keep the other user out
    m = t.mount(img, opts="allow_other")
    for e in ("S", "X", "U"):
        os.mkdir(m.p(e))
        os.mkdir(m.p(e, "sub"))
        for i in range(50):
            write_file(m.p(e, "sub", "f%d" % i), content(e + str(i), 0, 100 + i))
    os.chown(m.p("U"), 65534, 65534)
    names = os.listxattr(m.p("S"))
    for n in ("user.tslab.sealed", "user.tslab.drop", "user.tslab.files",
              "user.tslab.last_write", "user.tslab.created"):
        check(n in names, "listxattr lacks %s: %s" % (n, names))
    for n in ("user.tslab.epochs", "user.tslab.zonemap", "user.tslab.gc"):
        check(n in os.listxattr(m.path), "root listxattr lacks " + n)
    check(os.getxattr(m.p("S"), "user.tslab.files") == b"52", "files of S")
    # Only root or the owner may seal or drop.
    # (the kernel's default_permissions says EACCES before tslabfs's EPERM)
    check(as_user(65534, "os.setxattr(%r, 'user.tslab.sealed', b'1')" % m.p("S"))
          in (errno.EPERM, errno.EACCES), "nobody sealed root's epoch")
    check(as_user(65534, "os.setxattr(%r, 'user.tslab.drop', b'1')" % m.p("S"))
          in (errno.EPERM, errno.EACCES), "nobody dropped root's epoch")
    os.chmod(m.p("S"), 0o777)  # past the kernel: tslabfs itself refuses
    check(as_user(65534, "os.setxattr(%r, 'user.tslab.sealed', b'1')" % m.p("S"))
          == errno.EPERM, "nobody sealed root's world-writable epoch")
    os.chmod(m.p("S"), 0o755)
    check(as_user(65534, "os.setxattr(%r, 'user.tslab.sealed', b'1')" % m.p("U")) == 0,
          "the owner could not seal")
    check(os.getxattr(m.p("U"), "user.tslab.sealed") == b"1", "U not sealed")
    expect_errno(errno.EINVAL, os.setxattr, m.p("S", "sub"), "user.tslab.sealed", b"1")
    # Seal S: every change is EROFS, reads work.
    os.setxattr(m.p("S"), "user.tslab.sealed", b"1")
    check(os.getxattr(m.p("S"), "user.tslab.sealed") == b"1", "S not sealed")
    expect_errno(errno.EROFS, write_file, m.p("S", "sub", "new"), b"x")
    expect_errno(errno.EROFS, write_file, m.p("S", "sub", "f1"), b"x")
    expect_errno(errno.EROFS, os.unlink, m.p("S", "sub", "f2"))
    expect_errno(errno.EROFS, os.mkdir, m.p("S", "d2"))
    expect_errno(errno.EROFS, os.rename, m.p("S", "sub", "f3"), m.p("S", "sub", "g3"))
    expect_errno(errno.EROFS, os.rename, m.p("S"), m.p("S2"))
    expect_errno(errno.EROFS, os.chmod, m.p("S", "sub", "f4"), 0o600)
    expect_errno(errno.EROFS, os.setxattr, m.p("S", "sub", "f4"), "user.a", b"1")
    expect_errno(errno.EROFS, os.truncate, m.p("S", "sub", "f5"), 0)
    for i in range(50):
        check(read_file(m.p("S", "sub", "f%d" % i)) == content("S%d" % i, 0, 100 + i),
              "S/sub/f%d unreadable after seal" % i)
    write_file(m.p("X", "sub", "more"), b"X is not sealed")
    table = os.getxattr(m.path, "user.tslab.epochs").decode()
    rows = {r.split("\t")[1]: r.split("\t") for r in table.splitlines()[1:]}
    check(rows["/S"][8] == "1" and rows["/X"][8] == "0", "epoch table:\n" + table)
    check(rows["/S"][2] == "52" and rows["/X"][2] == "53", "epoch table:\n" + table)
    zm = os.getxattr(m.path, "user.tslab.zonemap").decode().splitlines()
    check(zm[0].startswith("zones ") and len(zm) == 1 + int(zm[0].split()[1]), "zonemap")
    sid = rows["/S"][0]
    check(any(r.split("\t")[4] == sid for r in zm[1:]), "S owns no zone in the map")
    m.umount()
    # Sealed survives the remount; rmdir and the drop attribute still drop.
    m = t.mount(img, opts="allow_other")
    check(os.getxattr(m.p("S"), "user.tslab.sealed") == b"1", "seal lost at remount")
    expect_errno(errno.EROFS, write_file, m.p("S", "sub", "new"), b"x")
    check(read_file(m.p("S", "sub", "f7")) == content("S7", 0, 107), "S/sub/f7")
    r = subprocess.run(["rm", "-rf", m.p("S", "sub")], stderr=subprocess.PIPE, text=True)
    check(r.returncode != 0 and "Read-only file system" in r.stderr, "rm -rf in sealed S")
    check(len(os.listdir(m.p("S", "sub"))) == 50, "files went from a sealed epoch")
    os.rmdir(m.p("S"))
    check(not os.path.exists(m.p("S")), "rmdir of a sealed epoch")
    os.setxattr(m.p("X"), "user.tslab.drop", b"1")
    check(sorted(os.listdir(m.path)) == ["U"], "drop attribute: %s" % os.listdir(m.path))
    expect_errno(errno.EINVAL, os.setxattr, m.p("U"), "user.tslab.drop", b"yes")
    m.umount()
    m = t.mount(img)
    check(sorted(os.listdir(m.path)) == ["U"], "drops not durable")
    m.umount()


def tslabctl(t):
    """tslabctl on a mount (stat/zones/--json, seal, drop, gc) and
    read-only on the unmounted image (the image is not changed)."""
    if not t.args:
        raise Fail("no tslabctl path given (meson passes it)")
    ctl = t.args[0]

    def ctl_run(*a, rc=0):
        r = subprocess.run([ctl, *a], capture_output=True, text=True)
        check(r.returncode == rc, "tslabctl %s: exit %d (want %d): %s%s" %
              (" ".join(a), r.returncode, rc, r.stdout[-1500:], r.stderr))
        return r.stdout

    import json
    import hashlib
    img = t.mkfs(size="256M", zone="8M")
    m = t.mount(img)
    for e in ("P", "Q"):
        os.makedirs(m.p(e, "a", "b"))
        for i in range(40):
            write_file(m.p(e, "a", "b", "f%d" % i), content(e + str(i), 0, 700))
    st = json.loads(ctl_run("--json", "stat", m.p("P", "a")))
    rows = {e["path"]: e for e in st["epochs"]}
    check(st["mounted"] and rows["/P"]["files"] == 43 and not rows["/P"]["sealed"],
          "stat --json: %s" % rows.get("/P"))
    z = json.loads(ctl_run("--json", "zones", m.path))
    owners = {x["owner_path"] for x in z["zones"]}
    check({"/P", "/Q"} <= owners and z["max_active"] == 14, "zones --json: %s" % owners)
    check(all(x["live"] + x["dead"] == x["wp"] for x in z["zones"]), "live + dead != wp")
    text = ctl_run("zones", m.path)
    check("/P" in text and "[" in text and "imp_open" in text, "zones text:\n" + text)
    ctl_run("seal", m.p("P"))
    check(os.getxattr(m.p("P"), "user.tslab.sealed") == b"1", "tslabctl seal")
    ctl_run("seal", m.p("P", "a"), rc=1)
    ctl_run("drop", m.p("Q"))
    check(sorted(os.listdir(m.path)) == ["P"], "tslabctl drop")
    gc = json.loads(ctl_run("--json", "gc", "run", m.path))
    check("gc_runs" in gc and "bytes_dead" in gc, "gc run: %s" % gc)
    ctl_run("stat", img, rc=1)  # mounted: the image is in use
    m.umount()
    before = hashlib.sha256(open(img, "rb").read()).hexdigest()
    st = json.loads(ctl_run("--json", "stat", img))
    rows = {e["path"]: e for e in st["epochs"]}
    check(not st["mounted"] and rows["/P"]["sealed"] and rows["/P"]["files"] == 43 and
          "/Q" not in rows, "image stat: %s" % rows)
    z = json.loads(ctl_run("--json", "zones", img))
    check("/P" in {x["owner_path"] for x in z["zones"]}, "image zones")
    ctl_run("gc", "status", img)
    check(hashlib.sha256(open(img, "rb").read()).hexdigest() == before,
          "tslabctl changed the unmounted image")
    r = subprocess.run([ctl, "check", img], capture_output=True, text=True)
    check(r.returncode in (0, 8) and (r.returncode == 0 or "not installed" in r.stderr),
          "tslabctl check: %d %s" % (r.returncode, r.stderr))
    ctl_run("frobnicate", m.path, rc=2)
    check("Usage" in ctl_run("--help"), "--help")


def main(t):
    tslabctl(t)
    seal_and_control(t)
    clock_policies(t)
    space_ingest(t)


run(main)
