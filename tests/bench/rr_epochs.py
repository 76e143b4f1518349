#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark (prints numbers, not a test): epochs written round-robin on a
device with 14 max active zones, with and without sealing.

  sudo tests/bench/rr_epochs.py BUILDDIR [SCRATCH]

Phase 1: 100 epochs written round-robin (a file to each in turn).
Phase 2 (only in the "sealed" run): every one of them sealed.
Phase 3: 14 new epochs written round-robin.
After each phase: active zones (open or closed on the device), zones in
use, dead bytes, write errors and the time taken (tslabctl zones --json)."""
import json
import os
import subprocess
import sys
import tempfile
import time

build = sys.argv[1]
scratch = sys.argv[2] if len(sys.argv) > 2 else "/var/tmp"
tslabfs = os.path.join(build, "fs/tslabfs")
mkfs = os.path.join(build, "mkfs/mkfs.tslabfs")
ctl = os.path.join(build, "tools/tslabctl")
N, FILES, SIZE = 100, 40, 2000


def zones(mnt):
    z = json.loads(subprocess.run([ctl, "--json", "zones", mnt], capture_output=True,
                                  text=True, check=True).stdout)
    used = sum(1 for x in z["zones"] if x["use"].startswith(("open", "full")))
    dead = sum(x["dead"] for x in z["zones"] if x["use"].startswith(("open", "full")))
    return z["active"], used, dead


def rr(mnt, names, files):
    errs = 0
    t0 = time.time()
    for n in names:
        os.mkdir(os.path.join(mnt, n))
    for i in range(files):
        for n in names:
            try:
                with open(os.path.join(mnt, n, "f%d" % i), "wb") as f:
                    f.write(os.urandom(SIZE))
            except OSError:
                errs += 1
    fd = os.open(mnt, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.time() - t0, errs


def run(seal):
    d = tempfile.mkdtemp(dir=scratch, prefix="rr-epochs-")
    img, mnt = os.path.join(d, "img"), os.path.join(d, "mnt")
    os.mkdir(mnt)
    subprocess.run([mkfs, "-q", "-f", "-s", "2G", "-z", "16M", "--max-active", "14",
                    "--max-open", "14", img], check=True)
    p = subprocess.Popen([tslabfs, "-f", img, mnt], stderr=subprocess.DEVNULL)
    while not os.path.ismount(mnt):
        time.sleep(0.05)
    try:
        label = "sealed" if seal else "today"
        t, e = rr(mnt, ["e%03d" % k for k in range(N)], FILES)
        a, u, dd = zones(mnt)
        print("%s: phase 1: %d epochs x %d files round-robin: %.1f s, %d errors; "
              "active zones %d, zones in use %d, dead %.1f MiB" % (label, N, FILES, t, e, a, u,
                                                                  dd / 2**20))
        if seal:
            t0 = time.time()
            for k in range(N):
                subprocess.run([ctl, "seal", os.path.join(mnt, "e%03d" % k)], check=True)
            a, u, dd = zones(mnt)
            print("%s: phase 2: sealed %d epochs in %.1f s; active zones %d, zones in use %d, "
                  "dead %.1f MiB" % (label, N, time.time() - t0, a, u, dd / 2**20))
        t, e = rr(mnt, ["n%03d" % k for k in range(14)], 200)
        a, u, dd = zones(mnt)
        print("%s: phase 3: 14 new epochs x 200 files round-robin: %.1f s, %d errors; "
              "active zones %d, zones in use %d, dead %.1f MiB" % (label, t, e, a, u, dd / 2**20))
    finally:
        subprocess.run(["umount", mnt])
        p.wait()
        subprocess.run(["rm", "-rf", d])


run(False)
run(True)
