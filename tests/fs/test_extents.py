#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Large and sparse files: a 16 GiB sparse file on a 4 GiB image (write at
the end, holes read as zeros, SEEK_DATA/SEEK_HOLE, truncate back and the
space comes back), the 2^43-byte maximum (EFBIG past it), multi-chunk
content across a remount, and rename/chmod of a large file not rewriting
its data (device bytes written stay small), a cold read of a large file
(device bytes read stay near its size; the mount's readahead window)."""
import errno
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, content, expect_errno, run  # noqa: E402

GiB = 1 << 30


def free_bytes(path):
    v = os.statvfs(path)
    return v.f_bavail * v.f_frsize


def image_bytes(img):
    return os.stat(img).st_blocks * 512


def sparse(t, m):
    p = m.p("d", "sparse")
    before = free_bytes(m.path)
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    tail = content("sparse-tail", 0, 1 << 20)
    end = 16 * GiB
    os.pwrite(fd, tail, end - len(tail))
    os.fsync(fd)
    check(os.fstat(fd).st_size == end, "size %d" % os.fstat(fd).st_size)
    for off in (0, 4096, GiB, 8 * GiB + 12345, end - len(tail) - 4096):
        check(os.pread(fd, 4096, off) == bytes(4096), "hole at %d is not zeros" % off)
    check(os.pread(fd, len(tail), end - len(tail)) == tail, "tail content")
    d = os.lseek(fd, 0, os.SEEK_DATA)
    check(end - len(tail) - 4020 < d <= end - len(tail), "SEEK_DATA(0) = %d" % d)
    check(os.lseek(fd, 0, os.SEEK_HOLE) == 0, "SEEK_HOLE(0)")
    check(os.lseek(fd, end - 1, os.SEEK_HOLE) == end, "SEEK_HOLE at the end")
    expect_errno(errno.ENXIO, os.lseek, fd, end, os.SEEK_DATA)
    used = before - free_bytes(m.path)
    check(used < 8 << 20, "16 GiB sparse file uses %d bytes" % used)
    os.ftruncate(fd, 4096)
    os.fsync(fd)
    check(os.pread(fd, 8192, 0) == bytes(4096), "truncated file reads as zeros")
    back = before - free_bytes(m.path)
    check(back < 256 << 10, "after truncating back, the file still holds %d bytes" % back)
    os.ftruncate(fd, 2 * GiB)  # grow again: the old tail must not come back
    check(os.pread(fd, 4096, end - len(tail) - 2 * GiB) == b"", "past the end")
    os.ftruncate(fd, end)
    check(os.pread(fd, len(tail), end - len(tail)) == bytes(len(tail)),
          "old tail came back after truncate + grow")
    os.close(fd)
    os.unlink(p)
    os.sync()
    return before


def maxsize(m):
    fd = os.open(m.p("d", "max"), os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"z", (1 << 43) - 1)
    check(os.fstat(fd).st_size == 1 << 43, "2^43-byte file")
    expect_errno(errno.EFBIG, os.pwrite, fd, b"z", 1 << 43)
    expect_errno(errno.EFBIG, os.ftruncate, fd, (1 << 43) + 1)
    check(os.pread(fd, 1, (1 << 43) - 1) == b"z", "last byte")
    os.close(fd)
    # glibc answers _PC_FILESIZEBITS from the statfs magic (32 for FUSE);
    # no FUSE request reaches the daemon for it
    print("pathconf FILESIZEBITS:", os.pathconf(m.path, "PC_FILESIZEBITS"))
    os.unlink(m.p("d", "max"))


def concurrent(m):
    """4 writers on disjoint ranges of one file (ranges share chunks at
    their edges) while another thread stats it; then compare."""
    import threading
    p = m.p("d", "conc")
    size = 4 * 3 * MiB_
    want = bytearray(size)
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    os.ftruncate(fd, size)
    errs = []
    stop = threading.Event()

    def writer(k):
        try:
            base = k * 3 * MiB_ + 777
            for i in range(12):
                data = content("conc%d" % k, i, 250000)
                off = base + i * 250000
                os.pwrite(fd, data, off)
                want[off:off + len(data)] = data
        except Exception as e:  # reported below
            errs.append(e)

    def statter():
        while not stop.is_set():
            os.stat(p)

    ts = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    st = threading.Thread(target=statter)
    st.start()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    stop.set()
    st.join()
    check(not errs, "writers failed: %s" % errs)
    os.fsync(fd)
    check(os.pread(fd, size, 0) == bytes(want), "concurrent writers: content")
    os.close(fd)
    return bytes(want)


MiB_ = 1 << 20


def daemon_read_bytes(m):
    with open("/proc/%d/io" % m.pid) as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    raise Fail("no read_bytes in /proc/%d/io" % m.pid)


def readahead_kb(m):
    """The mount's readahead window once the daemon logged setting it."""
    deadline = time.time() + 60
    while "tslabfs: readahead: " not in m.read_log():
        check(time.time() < deadline, "no readahead line in the log:\n" + m.read_log())
        time.sleep(0.05)
    dev = os.stat(m.path).st_dev
    with open("/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(dev), os.minor(dev))) as f:
        return int(f.read())


def cold_read(t, img):
    """A large file read back after a remount: every READ is served without
    the epoch lock in one pass over its chunks (a file only read since the
    mount used to be read again under the lock, 4 KiB block by block: twice
    the device bytes), and the mount's readahead is -o read_ahead_kb's."""
    m = t.mount(img)
    data = content("cold", 0, 24 << 20)
    with open(m.p("d", "cold"), "wb") as f:
        f.write(data)
    os.sync()
    m.umount()
    m = t.mount(img)
    check(readahead_kb(m) == 4096, "read_ahead_kb of the mount is the default 4096")
    before = daemon_read_bytes(m)
    with open(m.p("d", "cold"), "rb") as f:
        check(f.read() == data, "content of a 24 MiB file read cold")
    got = daemon_read_bytes(m) - before
    check(got < len(data) * 3 // 2,
          "reading a 24 MiB file cold read %d bytes from the device" % got)
    m.umount()


def main(t):
    img = t.mkfs(size="4G", zone="64M")
    m = t.mount(img)
    os.mkdir(m.p("d"))
    before = sparse(t, m)
    maxsize(m)
    conc = concurrent(m)
    # multi-chunk files, then rename and chmod them: no data rewritten
    files = {}
    for i, size in enumerate([4001, 4020, 4021, 8040, 123457, 3 << 20]):
        data = content("f%d" % i, 0, size)
        with open(m.p("d", "f%d" % i), "wb") as f:
            f.write(data)
        files["f%d" % i] = data
    os.sync()
    m.umount()
    m = t.mount(img)
    # what remains: the 12 MiB file of the concurrent writers, 3.1 MiB of files
    check(free_bytes(m.path) > before - (40 << 20), "space of the sparse file returned")
    grown = image_bytes(img)
    for name in list(files):
        os.rename(m.p("d", name), m.p("d", name + ".r"))
        os.chmod(m.p("d", name + ".r"), 0o600)
        files[name + ".r"] = files.pop(name)
    os.sync()
    moved = image_bytes(img) - grown
    check(moved < 1 << 20, "rename + chmod of 3 MiB of files wrote %d bytes" % moved)
    m.umount()
    m = t.mount(img)
    with open(m.p("d", "conc"), "rb") as f:
        check(f.read() == conc, "concurrent writers: content after remount")
    for name, data in files.items():
        with open(m.p("d", name), "rb") as f:
            check(f.read() == data, "%s content after remount" % name)
        check(os.stat(m.p("d", name)).st_mode & 0o777 == 0o600, "mode of %s" % name)
    m.umount()
    cold_read(t, img)
    print("sparse 16 GiB on a 4 GiB image, 2^43-byte maximum, %d large files: ok"
          % len(files))


if __name__ == "__main__":
    run(main)
