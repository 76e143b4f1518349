#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Export support (what the kernel's NFS server needs of a FUSE fs): file
handles from name_to_handle_at() open with open_by_handle_at() — also
after the daemon was restarted and the kernel forgot every inode (the
lookups of "." and ".." then reach the daemon) — and a handle of a file in
a dropped epoch gives ESTALE. The NFS round trip itself runs in the VM
(tests/vm/guest-nfs.sh)."""
import ctypes
import errno
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, content, run  # noqa: E402

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
MAX_HANDLE_SZ = 128


def name_to_handle(path):
    buf = ctypes.create_string_buffer(8 + MAX_HANDLE_SZ)
    struct.pack_into("Ii", buf, 0, MAX_HANDLE_SZ, 0)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(AT_FDCWD, path.encode(), buf, ctypes.byref(mount_id), 0):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    size, _ = struct.unpack_from("Ii", buf, 0)
    return buf.raw[:8 + size]


def open_by_handle(mount_fd, handle, flags=os.O_RDONLY):
    buf = ctypes.create_string_buffer(handle, len(handle))
    fd = libc.open_by_handle_at(mount_fd, buf, flags)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return fd


def read_handle(mount_path, handle):
    mfd = os.open(mount_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_by_handle(mfd, handle)
        try:
            return os.read(fd, 1 << 20)
        finally:
            os.close(fd)
    finally:
        os.close(mfd)


def main(t):
    img = t.mkfs(size="128M", zone="8M")
    m = t.mount(img)
    files = {}
    for e in ("A", "B"):
        os.makedirs(m.p(e, "sub"))
        for i in range(20):
            p = m.p(e, "sub", "f%d" % i)
            with open(p, "wb") as f:
                f.write(content(p, 0, 50 + i * 30))
            files[(e, i)] = name_to_handle(p)
    dh = name_to_handle(m.p("A", "sub"))
    for (e, i), h in files.items():
        check(read_handle(m.path, h) == content(m.p(e, "sub", "f%d" % i), 0, 50 + i * 30),
              "handle of %s/f%d reads other data" % (e, i))
    m.umount()
    # A new daemon; the kernel caches nothing of the old mount.
    m = t.mount(img)
    for (e, i), h in files.items():
        check(read_handle(m.path, h) == content(m.p(e, "sub", "f%d" % i), 0, 50 + i * 30),
              "after restart, handle of %s/f%d reads other data" % (e, i))
    mfd = os.open(m.path, os.O_RDONLY | os.O_DIRECTORY)
    dfd = open_by_handle(mfd, dh, os.O_RDONLY | os.O_DIRECTORY)
    check(sorted(os.listdir(dfd)) == sorted("f%d" % i for i in range(20)),
          "directory handle lists other entries")
    os.close(dfd)
    os.close(mfd)
    # Drop B: its handles are stale, A's still work.
    os.rmdir(m.p("B"))
    for i in range(20):
        try:
            read_handle(m.path, files[("B", i)])
        except OSError as ex:
            check(ex.errno == errno.ESTALE, "dropped handle: errno %d" % ex.errno)
        else:
            raise Fail("handle of dropped B/f%d still opens" % i)
        check(read_handle(m.path, files[("A", i)]) ==
              content(m.p("A", "sub", "f%d" % i), 0, 50 + i * 30), "A/f%d after drop" % i)
    m.umount()


run(main)
