# SPDX-License-Identifier: MIT
"""tslabfs on a block device (a loop device over an image): fuseblk mode.

- the mount shows up as fuseblk.tslabfs with the device as its source;
- umount returns only after the daemon has written everything: the daemon
  has logged "everything written" by the time umount returns, and files
  written without any fsync are all there after a remount;
- a second daemon on the same device is refused with a clear message;
- after SIGKILL, the dead mount is detached and the device mounts again.

Skipped (77) where loop devices cannot be set up.
"""
import os
import subprocess
import sys
import time

from tslabtest import Fail, SKIP, check, content, run

N = 20000


def losetup(img):
    r = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True)
    if r.returncode != 0:
        print("SKIP: no loop device:", r.stderr.strip())
        sys.exit(SKIP)
    return r.stdout.strip()


def mount_source_type(path):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == os.path.realpath(path):
                sep = parts.index("-")
                return parts[sep + 2], parts[sep + 1]
    return None, None


def write_files(m, d, n, ver):
    if not os.path.isdir(m.p(d)):
        os.mkdir(m.p(d))
    for i in range(n):
        name = "f%05d" % i
        with open(m.p(d, name), "wb") as f:
            f.write(content(name, ver, 1000 + i % 3000))


def verify_files(m, d, n, ver):
    for i in range(n):
        name = "f%05d" % i
        with open(m.p(d, name), "rb") as f:
            check(f.read() == content(name, ver, 1000 + i % 3000),
                  "%s/%s: content differs" % (d, name))


def main(t):
    img = os.path.join(t.dir, "disk")
    with open(img, "wb") as f:
        f.truncate(1 << 30)
    dev = losetup(img)
    try:
        r = subprocess.run([t.mkfs_bin, "-q", dev], capture_output=True, text=True)
        check(r.returncode == 0, "mkfs.tslabfs %s: %s%s" % (dev, r.stdout, r.stderr))
        # commit=3600: nothing is written before the unmount, which then
        # has ~50 MB to put and write.
        m = t.mount(dev, opts="commit=3600")
        src, typ = mount_source_type(m.path)
        check(typ == "fuseblk.tslabfs" and src == dev,
              "mount shows %s %s, expected fuseblk.tslabfs %s" % (typ, src, dev))
        print("mounted as", typ, "from", src)

        # Written and closed, never fsync'd: umount must wait for them.
        write_files(m, "w", N, 1)
        t0 = time.time()
        r = subprocess.run(["umount", m.path], capture_output=True, text=True)
        took = time.time() - t0
        check(r.returncode == 0, "umount: %s" % r.stderr)
        log = m.read_log()
        check("everything written" in log,
              "umount returned before the daemon wrote everything:\n" + log)
        print("umount returned after %.3f s with everything written" % took)
        m.umount()

        m = t.mount(dev)
        verify_files(m, "w", N, 1)
        print("remount: all %d files exact" % N)

        m2path = t.mountpoint("mnt2")
        r = subprocess.run([t.tslabfs, dev, m2path], capture_output=True, text=True)
        check(r.returncode != 0 and "in use" in r.stderr,
              "second daemon on %s: rc %d, %r" % (dev, r.returncode, r.stderr))
        print("second daemon refused:", r.stderr.strip())

        write_files(m, "k", 200, 2)
        fd = os.open(m.p("k"), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        m.kill()
        m = t.mount(dev)
        verify_files(m, "w", N, 1)
        verify_files(m, "k", 200, 2)
        print("after SIGKILL: remounted, fsync'd directory intact")
        m.umount()
    finally:
        for m in list(t.mounts):
            m.kill()
        subprocess.run(["losetup", "-d", dev], check=False)


run(main)
