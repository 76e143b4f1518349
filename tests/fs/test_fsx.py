#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fsx-style exerciser for file data: random writes (inside, across and past
the end, up to 256 KiB), reads, truncates (down, up, to 0), hole punches
(fallocate PUNCH_HOLE|KEEP_SIZE), mode-0 fallocate, mmap reads and writes
(msync), SEEK_DATA/SEEK_HOLE and fsync against an in-memory model of the
file, on files of at most 4 KiB, 1 MiB and 64 MiB. Every read is compared
with the model. Every few hundred operations the file is fsync'd and the
daemon either unmounted cleanly or SIGKILLed, then remounted and the whole
file compared with the model.

Optional argument after TSLABFS MKFS: total operations (default 100000;
TSLAB_FSX_OPS overrides). Deterministic: a fixed seed per file size."""
import ctypes
import errno
import mmap
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, run  # noqa: E402

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Fsx:
    def __init__(self, t, img, maxlen, seed, name):
        self.t, self.img, self.maxlen, self.name = t, img, maxlen, name
        self.r = random.Random(seed)
        self.model = bytearray()
        self.ops = dict(write=0, read=0, trunc=0, punch=0, falloc=0, mread=0, mwrite=0,
                        seek=0, fsync=0, remount=0, kill=0)
        self.m = t.mount(img)
        self.path = self.m.p("fsx", name)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)

    def fail(self, msg):
        raise Fail("%s after %d ops: %s" % (self.name, sum(self.ops.values()), msg))

    def compare(self, off, data):
        want = bytes(self.model[off:off + len(data)])
        if data != want:
            bad = next(i for i in range(min(len(data), len(want)) + 1)
                       if i >= len(data) or i >= len(want) or data[i] != want[i])
            self.fail("read at %d len %d: first difference at %d (got %d bytes, want %d)"
                      % (off, len(data), off + bad, len(data), len(want)))

    def rand_range(self, big):
        size = len(self.model)
        if big or size == 0:
            off = self.r.randrange(self.maxlen)
        else:
            off = self.r.randrange(size + 1)
        n = self.r.choice([1, 7, 512, 4020, 4096, 8192, 65536, 262144])
        n = self.r.randrange(1, n + 1)
        n = min(n, self.maxlen - off)
        return off, max(n, 1) if off < self.maxlen else 0

    def op_write(self):
        off, n = self.rand_range(self.r.random() < 0.2)
        if n == 0:
            return
        data = self.r.randbytes(n)
        check(os.pwrite(self.fd, data, off) == n, "short write")
        if off > len(self.model):
            self.model.extend(bytes(off - len(self.model)))
        self.model[off:off + n] = data
        self.ops["write"] += 1

    def op_read(self):
        off, n = self.rand_range(False)
        self.compare(off, os.pread(self.fd, n, off))
        self.ops["read"] += 1

    def op_trunc(self):
        x = self.r.random()
        size = 0 if x < 0.05 else self.r.randrange(self.maxlen + 1) if x < 0.5 else \
            self.r.randrange(len(self.model) + 1)
        os.ftruncate(self.fd, size)
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))
        self.ops["trunc"] += 1

    def op_punch(self):
        off, n = self.rand_range(False)
        if n == 0:
            return
        fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n)
        end = min(off + n, len(self.model))
        if off < end:
            self.model[off:end] = bytes(end - off)
        self.ops["punch"] += 1

    def op_falloc(self):
        off, n = self.rand_range(self.r.random() < 0.3)
        if n == 0:
            return
        fallocate(self.fd, 0, off, n)
        if off + n > len(self.model):
            self.model.extend(bytes(off + n - len(self.model)))
        self.ops["falloc"] += 1

    def op_mmap(self, write):
        size = len(self.model)
        if size == 0:
            return
        off = self.r.randrange(size)
        n = min(self.r.randrange(1, 65537), size - off)
        start = off - off % mmap.ALLOCATIONGRANULARITY
        mm = mmap.mmap(self.fd, off + n - start, offset=start)
        try:
            if write:
                data = self.r.randbytes(n)
                mm[off - start:off - start + n] = data
                mm.flush()
                self.model[off:off + n] = data
                self.ops["mwrite"] += 1
            else:
                self.compare(off, mm[off - start:off - start + n])
                self.ops["mread"] += 1
        finally:
            mm.close()

    def op_seek(self):
        size = len(self.model)
        off = self.r.randrange(size + 1)
        try:
            d = os.lseek(self.fd, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            if any(self.model[off:]):
                self.fail("SEEK_DATA(%d): ENXIO but data follows" % off)
            d = None
        if d is not None and (d < off or d >= size or any(self.model[off:d])):
            self.fail("SEEK_DATA(%d) = %d skips data (size %d)" % (off, d, size))
        if off < size:
            h = os.lseek(self.fd, off, os.SEEK_HOLE)
            if h < off or h > size:
                self.fail("SEEK_HOLE(%d) = %d (size %d)" % (off, h, size))
        self.ops["seek"] += 1

    def verify_all(self):
        st = os.fstat(self.fd)
        if st.st_size != len(self.model):
            self.fail("size %d, model %d" % (st.st_size, len(self.model)))
        for off in range(0, len(self.model), 1 << 20):
            self.compare(off, os.pread(self.fd, 1 << 20, off))

    def remount(self):
        os.fsync(self.fd)
        self.ops["fsync"] += 1
        os.close(self.fd)
        if self.r.random() < 0.5:
            self.m.kill()  # everything was fsync'd: a crash loses nothing
            self.ops["kill"] += 1
        else:
            self.m.umount()
        self.ops["remount"] += 1
        self.m = self.t.mount(self.img)
        self.fd = os.open(self.path, os.O_RDWR)
        self.verify_all()

    def run(self, nops, every):
        table = [(self.op_write, 30), (self.op_read, 25), (self.op_trunc, 5),
                 (self.op_punch, 6), (self.op_falloc, 2),
                 (lambda: self.op_mmap(False), 5), (lambda: self.op_mmap(True), 4),
                 (self.op_seek, 5)]
        fns = [f for f, w in table for _ in range(w)]
        for i in range(1, nops + 1):
            self.r.choice(fns)()
            if i % 97 == 0:
                os.fsync(self.fd)
                self.ops["fsync"] += 1
            if i % every == 0:
                self.remount()
        self.remount()
        os.close(self.fd)
        self.m.umount()


def main(t):
    total = int(os.environ.get("TSLAB_FSX_OPS") or (t.args[0] if t.args else 100000))
    img = t.mkfs(size="1G", zone="16M")
    m = t.mount(img)
    os.mkdir(m.p("fsx"))
    m.umount()
    done = 0
    # (max length, share of the operations, operations between remounts)
    for maxlen, share, every in [(4096, 0.5, 5000), (1 << 20, 0.4, 4000),
                                 (64 << 20, 0.1, 2500)]:
        n = int(total * share)
        f = Fsx(t, img, maxlen, maxlen, "f%d" % maxlen)
        f.run(n, every)
        done += sum(v for k, v in f.ops.items() if k not in ("remount", "kill"))
        print("fsx maxlen %d: %s" % (maxlen, f.ops))
    print("fsx operations: %d" % done)
    check(done >= total * 0.9, "ran %d of %d operations" % (done, total))


if __name__ == "__main__":
    run(main)
