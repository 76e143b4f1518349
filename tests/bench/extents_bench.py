#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Large-file benchmark: tslabfs against ext4 in one run, on image files in
the same scratch directory (ext4 on a loop device with direct I/O on the
backing file, default mkfs options; tslabfs on an image with emulated
zones). Not a test: it prints numbers, nothing is asserted.

Workloads (sizes scale with --scale, default 1.0):
  seqwrite   write a 1 GiB file in 1 MiB writes, fsync; MB/s
  seqread    drop caches, read it back in 1 MiB reads; MB/s
  randwrite  256 MiB file (written and fsync'd first), then 2,000 random
             4 KiB pwrite + fsync each; ops/s
  append     10,000 appends of 4 KiB to one file (O_APPEND), then fsync; s
  stress     4 processes x 1,500 mixed operations (write, read, append,
             truncate, punch) on 8 files of 4 MiB; s
  rss        tslabfs only: daemon VmHWM - VmRSS at idle while writing a
             4 GiB file (1 MiB writes, one fsync at the end); MiB
Device bytes read and written per user byte written are counted per
workload: /proc/PID/io of the daemon (tslabfs, O_DIRECT) and
/sys/block/loopN/stat (ext4).

  sudo tests/bench/run-extents-bench.sh [--build DIR] [--scratch DIR] [--scale F]
                                         [--only NAME,...]
--only runs the named workloads (seqwrite, seqread, randwrite, append,
stress, rss) in their usual order; seqread reads the file seqwrite wrote,
so selecting seqread runs seqwrite too (its row is printed as well).
"""
import argparse
import ctypes
import os
import random
import subprocess
import sys
import time

MiB = 1 << 20
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def sh(*a, **kw):
    return subprocess.run(list(a), check=True, **kw)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class Ext4:
    name = "ext4"

    def __init__(self, scratch, size):
        self.img = os.path.join(scratch, "ext4.img")
        self.mnt = os.path.join(scratch, "mnt-ext4")
        os.makedirs(self.mnt, exist_ok=True)
        with open(self.img, "wb") as f:
            f.truncate(size)
        self.loop = sh("losetup", "--direct-io=on", "-f", "--show", self.img,
                       capture_output=True, text=True).stdout.strip()
        sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", self.loop)
        sh("mount", self.loop, self.mnt)

    def io(self):
        with open("/sys/block/%s/stat" % os.path.basename(self.loop)) as f:
            v = f.read().split()
        return int(v[2]) * 512, int(v[6]) * 512

    def remount(self):
        sh("umount", self.mnt)
        sh("mount", self.loop, self.mnt)

    def rss(self):
        return None

    def close(self):
        subprocess.run(["umount", self.mnt])
        subprocess.run(["losetup", "-d", self.loop])
        os.unlink(self.img)


class Tslab:
    name = "tslabfs"

    def __init__(self, scratch, size, build):
        self.build = build
        self.img = os.path.join(scratch, "tslab.img")
        self.mnt = os.path.join(scratch, "mnt-tslab")
        os.makedirs(self.mnt, exist_ok=True)
        sh(os.path.join(build, "mkfs/mkfs.tslabfs"), "-q", "-f", "-s", str(size), self.img)
        self.mount()

    def mount(self):
        self.proc = subprocess.Popen([os.path.join(self.build, "fs/tslabfs"), "-f",
                                      self.img, self.mnt])
        for _ in range(600):
            if os.path.ismount(self.mnt):
                break
            time.sleep(0.05)
        os.makedirs(os.path.join(self.mnt, "b"), exist_ok=True)

    def io(self):
        r = w = 0
        with open("/proc/%d/io" % self.proc.pid) as f:
            for line in f:
                k, v = line.split(":")
                if k == "read_bytes":
                    r = int(v)
                elif k == "write_bytes":
                    w = int(v)
        return r, w

    def rss(self):
        d = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(("VmRSS", "VmHWM")):
                    k, v = line.split(":")
                    d[k] = int(v.split()[0]) * 1024
        return d

    def remount(self):
        sh("umount", self.mnt)
        self.proc.wait()
        self.mount()

    def close(self):
        subprocess.run(["umount", self.mnt])
        self.proc.wait()
        os.unlink(self.img)


def d(fs):
    p = os.path.join(fs.mnt, "b")
    os.makedirs(p, exist_ok=True)
    return p


def seqwrite(fs, size):
    buf = random.Random(1).randbytes(MiB)
    t = time.monotonic()
    fd = os.open(os.path.join(d(fs), "seq"), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    for off in range(0, size, MiB):
        os.write(fd, buf)
    os.fsync(fd)
    os.close(fd)
    return size / (time.monotonic() - t) / 1e6, size


def seqread(fs, size):
    drop_caches()
    t = time.monotonic()
    fd = os.open(os.path.join(d(fs), "seq"), os.O_RDONLY)
    n = 0
    while True:
        b = os.read(fd, MiB)
        if not b:
            break
        n += len(b)
    os.close(fd)
    if n != size:
        raise SystemExit("%s: read %d of %d bytes" % (fs.name, n, size))
    return n / (time.monotonic() - t) / 1e6, 0


def randwrite(fs, size, ops):
    r = random.Random(2)
    fd = os.open(os.path.join(d(fs), "rand"), os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    buf = r.randbytes(MiB)
    for off in range(0, size, MiB):
        os.pwrite(fd, buf, off)
    os.fsync(fd)
    t = time.monotonic()
    for _ in range(ops):
        os.pwrite(fd, r.randbytes(4096), r.randrange(size // 4096) * 4096)
        os.fsync(fd)
    el = time.monotonic() - t
    os.close(fd)
    return ops / el, ops * 4096


def append(fs, n):
    buf = random.Random(3).randbytes(4096)
    t = time.monotonic()
    fd = os.open(os.path.join(d(fs), "log"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    for _ in range(n):
        os.write(fd, buf)
    os.fsync(fd)
    os.close(fd)
    return time.monotonic() - t, n * 4096


STRESS = r'''
import ctypes, os, random, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
top, seed, ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
fds = [os.open(os.path.join(top, "s%d" % i), os.O_RDWR) for i in range(8)]
written = 0
for i in range(ops):
    fd = r.choice(fds)
    x = r.random()
    size = os.fstat(fd).st_size
    if x < 0.35:
        n = r.choice([4096, 65536, 1 << 20])
        os.pwrite(fd, r.randbytes(n), r.randrange(6 << 20))
        written += n
    elif x < 0.65:
        os.pread(fd, r.choice([4096, 65536, 1 << 20]), r.randrange(max(size, 1)))
    elif x < 0.8:
        os.write(fd, b"a" * 8192) if False else os.pwrite(fd, r.randbytes(8192), size)
        written += 8192
    elif x < 0.9:
        os.ftruncate(fd, r.randrange(2 << 20, 6 << 20))
    elif x < 0.97:
        libc.fallocate(fd, 3, r.randrange(max(size, 1)), r.randrange(1, 1 << 20))
    else:
        os.fsync(fd)
print(written)
'''


def stress(fs, procs, ops):
    top = d(fs)
    buf = random.Random(4).randbytes(4 * MiB)
    for i in range(8):
        with open(os.path.join(top, "s%d" % i), "wb") as f:
            f.write(buf)
    os.sync()
    t = time.monotonic()
    ps = [subprocess.Popen([sys.executable, "-c", STRESS, top, str(i), str(ops)],
                           stdout=subprocess.PIPE, text=True) for i in range(procs)]
    written = sum(int(p.communicate()[0]) for p in ps)
    os.sync()
    for i in range(8):
        fd = os.open(os.path.join(top, "s%d" % i), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.monotonic() - t, written


def rss_4g(fs, size):
    idle = fs.rss()["VmRSS"]
    buf = random.Random(5).randbytes(MiB)
    fd = os.open(os.path.join(d(fs), "big4"), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    peak = 0
    for i, off in enumerate(range(0, size, MiB)):
        os.write(fd, buf)
        if i % 64 == 0:
            peak = max(peak, fs.rss()["VmRSS"])
    os.fsync(fd)
    os.close(fd)
    hwm = fs.rss()["VmHWM"]
    os.unlink(os.path.join(d(fs), "big4"))
    return (max(peak, hwm) - idle) / MiB, size


def measure(fs, fn, *a):
    r0, w0 = fs.io()
    val, user = fn(fs, *a)
    r1, w1 = fs.io()
    return val, user, r1 - r0, w1 - w0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--scratch", default="/var/tmp/extents-bench")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="",
                    help="comma-separated workloads: seqwrite,seqread,randwrite,append,stress,rss")
    a = ap.parse_args()
    names = ("seqwrite", "seqread", "randwrite", "append", "stress", "rss")
    only = set(x for x in a.only.split(",") if x)
    if only - set(names):
        ap.error("--only: unknown workload(s) %s" % ",".join(sorted(only - set(names))))
    if "seqread" in only:
        only.add("seqwrite")
    os.makedirs(a.scratch, exist_ok=True)
    s = a.scale
    seq = int(1024 * s) * MiB
    work = [("seqwrite MB/s", seqwrite, (seq,)),
            ("seqread MB/s", seqread, (seq,)),
            ("randwrite 4K+fsync ops/s", randwrite, (int(256 * s) * MiB, int(2000 * s))),
            ("append 4K x N s", append, (int(10000 * s),)),
            ("stress s", stress, (4, int(1500 * s)))]
    if only:
        work = [w for w in work if w[0].split()[0] in only]
    res = {}
    for mk in (lambda: Ext4(a.scratch, 12 << 30), lambda: Tslab(a.scratch, 12 << 30, a.build)):
        fs = mk()
        try:
            for name, fn, args in work:
                res[(fs.name, name)] = measure(fs, fn, *args)
                print(fs.name, name, "%.3f" % res[(fs.name, name)][0], flush=True)
            if fs.name == "tslabfs" and (not only or "rss" in only):
                fs.remount()
                res[(fs.name, "rss")] = measure(fs, rss_4g, int(4096 * s) * MiB)
        finally:
            fs.close()
    print()
    print("Times (s): lower is better; rates: higher is better.")
    print("| workload | ext4 | tslabfs | ratio (tslabfs/ext4) | device read/written per user byte, ext4 | tslabfs |")
    print("|---|---|---|---|---|---|")
    for name, _, _ in work:
        e, t = res[("ext4", name)], res[("tslabfs", name)]

        def per(x):
            return "%.2f / %.2f" % (x[2] / x[1], x[3] / x[1]) if x[1] else \
                "%.0f MB / %.0f MB" % (x[2] / 1e6, x[3] / 1e6)
        print("| %s | %.3f | %.3f | %.2f | %s | %s |" % (name, e[0], t[0], t[0] / e[0],
                                                       per(e), per(t)))
    if ("tslabfs", "rss") not in res:
        return
    r = res[("tslabfs", "rss")]
    print("| daemon RSS growth writing %d MiB | - | %.1f MiB | - | - | %s |"
          % (int(4096 * s), r[0], "%.2f / %.2f" % (r[2] / r[1], r[3] / r[1])))


if __name__ == "__main__":
    main()
