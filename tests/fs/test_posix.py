#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every POSIX operation tslabfs implements, its errors, and that all of it
survives an unmount + remount; read-only mounts; stale handles after a drop;
the command line and the mount(8) helper."""
import ctypes
import errno
import os
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, expect_errno, content, run  # noqa: E402

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def renameat2(old, new, flags):
    if libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def files_and_data(m):
    e = m.p("e1")
    os.mkdir(e)
    expect_errno(errno.EEXIST, os.mkdir, e)
    write(m.p("e1", "a"), b"hello")
    check(read(m.p("e1", "a")) == b"hello", "read after create")
    write(m.p("e1", "a"), b" world", "ab")
    check(read(m.p("e1", "a")) == b"hello world", "append")
    with open(m.p("e1", "a"), "r+b") as f:
        f.seek(1)
        f.write(b"EL")
    check(read(m.p("e1", "a")) == b"hELlo world", "overwrite in the middle")
    big = content("big", 0, 300000)
    write(m.p("e1", "big"), big)
    check(read(m.p("e1", "big")) == big, "file > 4 KiB")
    os.truncate(m.p("e1", "big"), 5000)
    check(read(m.p("e1", "big")) == big[:5000], "truncate down")
    with open(m.p("e1", "big"), "r+b") as f:
        os.ftruncate(f.fileno(), 6000)
    check(read(m.p("e1", "big")) == big[:5000] + bytes(1000), "ftruncate up fills zeros")
    with open(m.p("e1", "sparse"), "wb") as f:
        f.seek(10000)
        f.write(b"x")
    check(read(m.p("e1", "sparse")) == bytes(10000) + b"x", "write past EOF")
    fd = os.open(m.p("e1", "synced"), os.O_CREAT | os.O_WRONLY, 0o640)
    os.write(fd, b"durable")
    os.fsync(fd)
    os.fdatasync(fd)
    os.close(fd)
    check(stat.S_IMODE(os.stat(m.p("e1", "synced")).st_mode) == 0o640, "create mode")
    expect_errno(errno.ENOENT, os.stat, m.p("e1", "nope"))
    expect_errno(errno.ENOENT, open, m.p("nodir", "x"), "wb")
    expect_errno(errno.ENOTDIR, os.stat, m.p("e1", "a", "x"))
    expect_errno(errno.EISDIR, open, m.p("e1"), "wb")


def names(m):
    ok = "n" * 255
    write(m.p("e1", ok), b"255")
    check(read(m.p("e1", ok)) == b"255", "255-byte name")
    expect_errno(errno.ENAMETOOLONG, open, m.p("e1", "n" * 256), "wb")
    expect_errno(errno.ENAMETOOLONG, os.mkdir, m.p("e1", "d" * 256))
    weird = "sp ace\ttab\u00e9\u2603;'\""
    write(m.p("e1", weird), b"w")
    check(weird in os.listdir(m.p("e1")), "odd characters in a name")


def unlink_rmdir(m):
    write(m.p("e1", "gone"), b"x")
    os.unlink(m.p("e1", "gone"))
    expect_errno(errno.ENOENT, os.stat, m.p("e1", "gone"))
    expect_errno(errno.ENOENT, os.unlink, m.p("e1", "gone"))
    os.mkdir(m.p("e1", "sub"))
    expect_errno(errno.EISDIR, os.unlink, m.p("e1", "sub"))
    expect_errno(errno.ENOTDIR, os.rmdir, m.p("e1", "a"))
    write(m.p("e1", "sub", "f"), b"f")
    expect_errno(errno.ENOTEMPTY, os.rmdir, m.p("e1", "sub"))
    os.unlink(m.p("e1", "sub", "f"))
    os.rmdir(m.p("e1", "sub"))
    expect_errno(errno.ENOENT, os.rmdir, m.p("e1", "sub"))
    # unlinked while open: still readable and writable through the fd
    fd = os.open(m.p("e1", "open-unlinked"), os.O_CREAT | os.O_RDWR)
    os.write(fd, b"still here")
    os.unlink(m.p("e1", "open-unlinked"))
    os.write(fd, b"!")
    check(os.pread(fd, 100, 0) == b"still here!", "read an unlinked open file")
    os.close(fd)
    expect_errno(errno.ENOENT, os.stat, m.p("e1", "open-unlinked"))
    unlinked_existing(m)


def epoch_files(m, ep):
    """Objects of epoch EP, after fsync of its directory has put every
    file still buffered in DRAM (objects are counted when first put)."""
    fd = os.open(m.p(ep), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return int(os.getxattr(m.p(ep), "user.tslab.files"))


def wait_files(m, ep, want):
    """The kernel's FORGET arrives asynchronously after the last close."""
    for _ in range(100):
        if epoch_files(m, ep) == want:
            return True
        time.sleep(0.05)
    return False


def unlinked_existing(m):
    """An existing file opened with open() (with no_open the daemon sees
    no OPEN and no RELEASE) and unlinked stays readable and writable through
    its descriptors until the last close; then its object is freed."""
    write(m.p("e1", "kept-open"), b"old content")
    n0 = epoch_files(m, "e1")
    fd = os.open(m.p("e1", "kept-open"), os.O_RDWR)
    rd = os.open(m.p("e1", "kept-open"), os.O_RDONLY)
    os.unlink(m.p("e1", "kept-open"))
    expect_errno(errno.ENOENT, os.stat, m.p("e1", "kept-open"))
    check(os.fstat(fd).st_nlink == 0, "nlink 0 after unlink")
    os.posix_fadvise(rd, 0, 0, os.POSIX_FADV_DONTNEED)  # make the daemon answer
    check(os.pread(rd, 100, 0) == b"old content", "read an unlinked file opened by open()")
    os.pwrite(fd, b"new", 0)
    os.fsync(fd)
    os.posix_fadvise(rd, 0, 0, os.POSIX_FADV_DONTNEED)
    check(os.pread(rd, 100, 0) == b"new content", "write to an unlinked file")
    os.close(fd)
    check(os.pread(rd, 100, 0) == b"new content", "still open once")
    check(epoch_files(m, "e1") == n0, "object kept while open")
    os.close(rd)
    check(wait_files(m, "e1", n0 - 1), "object freed after the last close (%d -> %d)"
          % (n0, epoch_files(m, "e1")))
    # the same name again, while nothing refers to the old file
    write(m.p("e1", "kept-open"), b"second")
    check(read(m.p("e1", "kept-open")) == b"second", "recreated after unlink")
    os.unlink(m.p("e1", "kept-open"))
    check(wait_files(m, "e1", n0 - 1), "recreated file freed")


def unlink_durable(t):
    """Unlinks are durable after fsync of the directory, also of a file
    that is still open (an orphan record, freed by recovery); a crash
    (SIGKILL) right after must not bring any of them back."""
    img = t.mkfs(name="unlink-img", size="256M", zone="8M")
    m = t.mount(img, path=t.mountpoint("unlink-mnt"))
    os.mkdir(m.p("d"))
    for name in ("a", "b", "c"):
        write(m.p("d", name), name.encode() * 10)
    dfd = os.open(m.p("d"), os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    held = os.open(m.p("d", "b"), os.O_RDONLY)
    os.unlink(m.p("d", "a"))
    os.unlink(m.p("d", "b"))
    os.fsync(dfd)
    check(os.pread(held, 100, 0) == b"b" * 10, "open orphan readable after fsyncdir")
    m.kill()
    for fd in (held, dfd):
        try:
            os.close(fd)
        except OSError:  # the connection is gone; the descriptor is closed
            pass
    m = t.mount(img, path=t.mountpoint("unlink-mnt"))
    check(sorted(os.listdir(m.p("d"))) == ["c"], "after crash: %r" % os.listdir(m.p("d")))
    check(epoch_files(m, "d") == 2, "orphan freed by recovery (%d objects)"
          % epoch_files(m, "d"))
    m.umount()


def renames(m):
    write(m.p("e1", "r1"), b"one")
    os.rename(m.p("e1", "r1"), m.p("e1", "r2"))
    check(read(m.p("e1", "r2")) == b"one", "rename")
    expect_errno(errno.ENOENT, os.stat, m.p("e1", "r1"))
    write(m.p("e1", "r3"), b"three")
    os.rename(m.p("e1", "r3"), m.p("e1", "r2"))
    check(read(m.p("e1", "r2")) == b"three", "rename replaces atomically")
    write(m.p("e1", "r4"), b"four")
    expect_errno(errno.EEXIST, renameat2, m.p("e1", "r4"), m.p("e1", "r2"), RENAME_NOREPLACE)
    renameat2(m.p("e1", "r4"), m.p("e1", "r5"), RENAME_NOREPLACE)
    renameat2(m.p("e1", "r5"), m.p("e1", "r2"), RENAME_EXCHANGE)
    check(read(m.p("e1", "r2")) == b"four" and read(m.p("e1", "r5")) == b"three",
          "RENAME_EXCHANGE swaps")
    expect_errno(errno.ENOENT, renameat2, m.p("e1", "r5"), m.p("e1", "zz"), RENAME_EXCHANGE)
    os.makedirs(m.p("e1", "d1", "d2"))
    expect_errno(errno.EINVAL, os.rename, m.p("e1", "d1"), m.p("e1", "d1", "d2", "d3"))
    os.mkdir(m.p("e1", "full"))
    write(m.p("e1", "full", "x"), b"x")
    expect_errno(errno.ENOTEMPTY, os.rename, m.p("e1", "d1"), m.p("e1", "full"))
    expect_errno(errno.EISDIR, os.rename, m.p("e1", "r2"), m.p("e1", "d1"))
    expect_errno(errno.ENOTDIR, os.rename, m.p("e1", "d1"), m.p("e1", "r2"))
    os.mkdir(m.p("e1", "empty"))
    os.rename(m.p("e1", "d1"), m.p("e1", "empty"))
    check(os.path.isdir(m.p("e1", "empty", "d2")), "dir replaces an empty dir")
    check(os.stat(m.p("e1")).st_nlink == 2 + 2, "dir link count after renames")
    # across epochs: EXDEV (mv copies)
    os.mkdir(m.p("e2"))
    expect_errno(errno.EXDEV, os.rename, m.p("e1", "r2"), m.p("e2", "r2"))
    write(m.p("rootfile"), b"r")
    expect_errno(errno.EXDEV, os.rename, m.p("rootfile"), m.p("e1", "rootfile"))
    # an epoch directory renamed stays an epoch
    os.rename(m.p("e2"), m.p("e2b"))
    check(int(os.getxattr(m.p("e2b"), "user.tslab.files")) >= 1, "renamed epoch keeps stats")
    write(m.p("e2b", "f"), b"x")
    os.rmdir(m.p("e2b"))
    expect_errno(errno.ENOENT, os.stat, m.p("e2b"))


def links(m):
    os.symlink("a", m.p("e1", "sym"))
    check(os.readlink(m.p("e1", "sym")) == "a", "readlink")
    check(read(m.p("e1", "sym")) == b"hELlo world", "follow symlink")
    os.symlink("/nowhere/" + "x" * 1000, m.p("e1", "dangling"))
    check(stat.S_ISLNK(os.lstat(m.p("e1", "dangling")).st_mode), "lstat symlink")
    expect_errno(errno.ENOENT, os.stat, m.p("e1", "dangling"))
    expect_errno(errno.EINVAL, os.readlink, m.p("e1", "a"))
    os.link(m.p("e1", "a"), m.p("e1", "hard"))
    check(os.stat(m.p("e1", "a")).st_nlink == 2, "nlink after link")
    check(os.stat(m.p("e1", "a")).st_ino == os.stat(m.p("e1", "hard")).st_ino, "same inode")
    write(m.p("e1", "hard"), b"via link", "ab")
    check(read(m.p("e1", "a")).endswith(b"via link"), "write through a link")
    os.link(m.p("e1", "big"), m.p("e1", "big2"))
    os.unlink(m.p("e1", "big"))
    check(os.stat(m.p("e1", "big2")).st_nlink == 1, "nlink after unlinking original")
    check(len(read(m.p("e1", "big2"))) == 6000, "content after unlinking original")
    expect_errno(errno.EEXIST, os.link, m.p("e1", "a"), m.p("e1", "hard"))
    os.mkdir(m.p("e3"))
    expect_errno(errno.EXDEV, os.link, m.p("e1", "a"), m.p("e3", "a"))
    expect_errno(errno.EPERM, os.link, m.p("e1", "empty"), m.p("e1", "dirlink"))


def special(m):
    os.mkfifo(m.p("e1", "fifo"), 0o600)
    check(stat.S_ISFIFO(os.stat(m.p("e1", "fifo")).st_mode), "fifo")
    os.mknod(m.p("e1", "sock"), stat.S_IFSOCK | 0o600)
    check(stat.S_ISSOCK(os.stat(m.p("e1", "sock")).st_mode), "socket node")
    os.mknod(m.p("e1", "chr"), stat.S_IFCHR | 0o600, os.makedev(1, 3))
    check(os.stat(m.p("e1", "chr")).st_rdev == os.makedev(1, 3), "char device rdev")
    s = socket.socket(socket.AF_UNIX)
    s.bind(m.p("e1", "bound"))
    s.close()
    check(stat.S_ISSOCK(os.stat(m.p("e1", "bound")).st_mode), "bound unix socket")


def attrs(m):
    p = m.p("e1", "a")
    os.chmod(p, 0o4751)
    check(stat.S_IMODE(os.stat(p).st_mode) == 0o4751, "chmod")
    os.chown(p, 1234, 5678)
    st = os.stat(p)
    check((st.st_uid, st.st_gid) == (1234, 5678), "chown")
    os.utime(p, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(p)
    check(st.st_atime_ns == 1_000_000_123 and st.st_mtime_ns == 2_000_000_456,
          "utimens keeps nanoseconds")
    os.utime(m.p("e1"), ns=(3_000_000_001, 4_000_000_002))
    check(os.stat(m.p("e1")).st_mtime_ns == 4_000_000_002, "utimens on a directory")
    check(os.access(p, os.R_OK | os.W_OK), "access as root")
    os.chmod(m.p("e1", "synced"), 0o600)
    pid = os.fork()
    if pid == 0:
        os.setgid(65534)
        os.setuid(65534)
        ok = not os.access(m.p("e1", "synced"), os.R_OK)
        try:
            open(m.p("e1", "synced"), "rb")
            ok = False
        except PermissionError:
            pass
        os._exit(0 if ok else 1)
    check(os.waitpid(pid, 0)[1] == 0, "permissions enforced for another user")


def as_nobody(fn):
    """Run fn() in a child that dropped root (uid/gid 65534, so without
    CAP_FSETID); its exceptions become a failed check."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            fn()
            code = 0
        except BaseException as e:  # noqa: B036 -- report anything
            print("as uid 65534:", repr(e), flush=True)
        os._exit(code)
    return os.waitpid(pid, 0)[1] == 0


def privileges(t):
    """setuid/setgid are cleared as on Linux filesystems, through a real
    mount: an unprivileged write (through the page cache, and through the
    direct I/O of a write-only created file), truncate and O_TRUNC clear
    setuid, and setgid when group-executable; root's writes keep them; a
    chown clears them even by root; and the cleared modes persist. With
    killpriv_v2 (fs/rawreq.c) the daemon does this, not the kernel."""
    img = t.mkfs("img-priv", size="256M", zone="8M")
    os.chmod(t.dir, 0o711)  # uid 65534 walks to the mountpoint
    m = t.mount(img, path=t.mountpoint("mnt-priv"), opts="allow_other")
    os.mkdir(m.p("e"))
    os.chmod(m.p("e"), 0o777)

    def mode(name):
        return stat.S_IMODE(os.stat(m.p("e", name)).st_mode)

    def made(name, perm, data=b"0123456789"):
        write(m.p("e", name), data)
        os.chmod(m.p("e", name), perm)
        check(mode(name) == perm, "%s made with %o" % (name, perm))

    # write(2) through a descriptor root opened, by a process without root
    made("w-suid", 0o4777)
    made("w-sgid-x", 0o2777)
    made("w-sgid-nox", 0o2767)
    for name in ("w-suid", "w-sgid-x", "w-sgid-nox"):
        fd = os.open(m.p("e", name), os.O_WRONLY)
        check(as_nobody(lambda: os.pwrite(fd, b"x", 3)), "unprivileged write of " + name)
        os.close(fd)
    check(mode("w-suid") == 0o777, "unprivileged write clears setuid: %o" % mode("w-suid"))
    check(mode("w-sgid-x") == 0o777,
          "unprivileged write clears group-executable setgid: %o" % mode("w-sgid-x"))
    check(mode("w-sgid-nox") == 0o2767,
          "setgid without group execute stays: %o" % mode("w-sgid-nox"))
    check(read(m.p("e", "w-suid")) == b"012x456789", "the write landed")

    # a second unprivileged write to a file whose bits were set again
    os.chmod(m.p("e", "w-suid"), 0o6777)
    fd = os.open(m.p("e", "w-suid"), os.O_WRONLY | os.O_APPEND)
    check(as_nobody(lambda: [os.write(fd, b"a") for _ in range(3)]), "appends")
    os.close(fd)
    check(mode("w-suid") == 0o777, "setuid cleared again after chmod: %o" % mode("w-suid"))

    # root keeps them (CAP_FSETID)
    made("root", 0o6777)
    write(m.p("e", "root"), b"by root", "r+b")
    os.truncate(m.p("e", "root"), 2)
    check(mode("root") == 0o6777, "root's write and truncate keep the bits: %o" % mode("root"))

    # truncate(2), ftruncate(2) and open(O_TRUNC) by uid 65534
    made("t-path", 0o6777)
    made("t-fd", 0o4777)
    made("t-open", 0o6777)
    check(as_nobody(lambda: os.truncate(m.p("e", "t-path"), 4)), "truncate")
    fd = os.open(m.p("e", "t-fd"), os.O_WRONLY)
    check(as_nobody(lambda: os.ftruncate(fd, 1)), "ftruncate")
    os.close(fd)

    def open_trunc():
        fd = os.open(m.p("e", "t-open"), os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"new")
        os.close(fd)

    check(as_nobody(open_trunc), "open(O_TRUNC) + write")
    for name, size in (("t-path", 4), ("t-fd", 1), ("t-open", 3)):
        st = os.stat(m.p("e", name))
        check(stat.S_IMODE(st.st_mode) == 0o777 and st.st_size == size,
              "unprivileged truncate of %s clears the bits: %o, %d bytes" %
              (name, stat.S_IMODE(st.st_mode), st.st_size))

    # a file created write-only (written with direct I/O), made setuid by
    # its owner through the open descriptor, then written
    def own_file():
        fd = os.open(m.p("e", "own"), os.O_CREAT | os.O_WRONLY, 0o755)
        os.write(fd, b"first")
        os.fchmod(fd, 0o4755)
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o4755:
            raise Fail("fchmod 4755")
        os.write(fd, b"second")
        os.close(fd)

    check(as_nobody(own_file), "own file")
    check(mode("own") == 0o755, "direct I/O write clears setuid: %o" % mode("own"))
    check(read(m.p("e", "own")) == b"firstsecond", "own file content")

    # chown clears them even when root does it (setgid: if group-executable)
    made("c-x", 0o6755)
    made("c-nox", 0o6745)
    os.chown(m.p("e", "c-x"), 65534, 65534)
    os.chown(m.p("e", "c-nox"), 65534, -1)
    check(mode("c-x") == 0o755, "chown clears setuid and setgid: %o" % mode("c-x"))
    check(mode("c-nox") == 0o2745, "chown keeps setgid without group execute: %o" %
          mode("c-nox"))
    os.mkdir(m.p("e", "d"))
    os.chmod(m.p("e", "d"), 0o2775)
    os.chown(m.p("e", "d"), 65534, 65534)
    check(stat.S_IMODE(os.stat(m.p("e", "d")).st_mode) == 0o2775,
          "chown of a directory keeps its setgid")

    want = {n: mode(n) for n in os.listdir(m.p("e"))}
    m.umount()
    m = t.mount(img, path=t.mountpoint("mnt-priv"))
    got = {n: stat.S_IMODE(os.stat(m.p("e", n)).st_mode) for n in os.listdir(m.p("e"))}
    check(got == want, "modes persist: %r != %r" % (got, want))
    m.umount()


def xattrs(m):
    p = m.p("e1", "a")
    os.setxattr(p, "user.color", b"blue")
    check(os.getxattr(p, "user.color") == b"blue", "getxattr")
    os.setxattr(p, "user.color", b"green", os.XATTR_REPLACE)
    check(os.getxattr(p, "user.color") == b"green", "XATTR_REPLACE")
    expect_errno(errno.EEXIST, os.setxattr, p, "user.color", b"x", os.XATTR_CREATE)
    expect_errno(errno.ENODATA, os.setxattr, p, "user.none", b"x", os.XATTR_REPLACE)
    os.setxattr(p, "user.big", b"v" * 10000)
    os.setxattr(p, "user.empty", b"")
    check(os.getxattr(p, "user.empty") == b"", "empty value")
    check(set(os.listxattr(p)) == {"user.color", "user.big", "user.empty"}, "listxattr")
    os.removexattr(p, "user.big")
    expect_errno(errno.ENODATA, os.getxattr, p, "user.big")
    expect_errno(errno.ENODATA, os.removexattr, p, "user.big")
    expect_errno(errno.EOPNOTSUPP, os.setxattr, p, "trusted.x", b"x")
    os.setxattr(m.p("e1"), "user.dir", b"d")
    for n in ("files", "bytes", "slabs", "zones"):
        v = os.getxattr(m.p("e1"), "user.tslab." + n)
        check(v.isdigit(), "user.tslab.%s is a number: %r" % (n, v))
    check(int(os.getxattr(m.p("e1"), "user.tslab.files")) > 10, "epoch object count")
    check("user.tslab.files" in os.listxattr(m.p("e1")), "epoch stats listed")
    expect_errno(errno.EPERM, os.setxattr, m.p("e1"), "user.tslab.files", b"1")
    expect_errno(errno.ENODATA, os.getxattr, p, "user.tslab.files")


def listing(m):
    os.mkdir(m.p("big"))
    want = {"f%05d" % i for i in range(3000)}
    for n in want:
        write(m.p("big", n), n.encode())
    got = os.listdir(m.p("big"))
    check(len(got) == len(set(got)) and set(got) == want, "readdir of 3000 entries")
    with os.scandir(m.p("big")) as it:
        for i, e in enumerate(it):
            check(e.is_file() and e.inode() == os.stat(m.p("big", e.name)).st_ino,
                  "readdirplus entry types/inodes")
            if i > 100:
                break
    # deletions during a listing: each name at most once
    seen = set()
    with os.scandir(m.p("big")) as it:
        for i, e in enumerate(it):
            check(e.name not in seen, "name listed twice during deletions")
            seen.add(e.name)
            if i % 2 == 0:
                os.unlink(m.p("big", "f%05d" % (i // 2)))
    os.rmdir(m.p("big"))  # an epoch: goes away with its files


def statfs(m):
    v = os.statvfs(m.path)
    check(v.f_blocks > 0 and 0 < v.f_bavail <= v.f_bfree <= v.f_blocks, "statfs blocks")
    check(v.f_files > 0 and v.f_ffree > 0 and v.f_namemax == 255, "statfs inodes/namemax")
    df = subprocess.run(["df", "-i", m.path], capture_output=True, text=True)
    check(df.returncode == 0 and m.img in df.stdout,
          "df -i works: " + df.stdout + df.stderr)


def snapshot(m, top):
    out = {}
    def onerror(e):
        raise Fail("walking %s: %s" % (top, e))

    for root, dirs, files in os.walk(m.p(top), onerror=onerror):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, m.path)
            d = None
            if stat.S_ISREG(st.st_mode):
                d = read(p)
            elif stat.S_ISLNK(st.st_mode):
                d = os.readlink(p)
            xa = {} if stat.S_ISLNK(st.st_mode) else \
                {k: os.getxattr(p, k) for k in os.listxattr(p) if not k.startswith("user.tslab.")}
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size,
                        st.st_mtime_ns, st.st_rdev, d, xa)
    return out


def stale_handles(t, m):
    os.mkdir(m.p("gone"))
    write(m.p("gone", "f"), b"data")
    fd = os.open(m.p("gone", "f"), os.O_RDWR)
    os.stat(m.p("gone", "f"))
    os.rmdir(m.p("gone"))
    expect_errno(errno.ENOENT, os.stat, m.p("gone", "f"))
    for fn in (lambda: os.write(fd, b"x" * 10), lambda: os.fsync(fd),
               lambda: os.fchmod(fd, 0o600)):
        try:
            fn()
        except OSError as e:
            check(e.errno in (errno.ESTALE, errno.ENOENT, errno.EIO), "stale fd errno %d" % e.errno)
    try:
        os.close(fd)
    except OSError:
        pass
    check(m.proc.poll() is None, "daemon alive after using a stale handle")


def cli(t, img):
    r = subprocess.run([t.tslabfs, "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "epoch_depth=N" in r.stdout and "commit=SECONDS" in r.stdout,
          "--help lists own options")
    r = subprocess.run([t.tslabfs, "-V"], capture_output=True, text=True)
    check(r.returncode == 0 and "FUSE library version" in r.stdout + r.stderr, "--version")
    mnt = t.mountpoint("cli")
    r = subprocess.run([t.tslabfs, "-o", "bogus_option", img, mnt], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode != 0 and not os.path.ismount(mnt), "unknown option is an error")
    r = subprocess.run([t.tslabfs, img], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "MOUNTPOINT" in r.stderr, "missing mountpoint")
    r = subprocess.run([t.tslabfs, "/nonexistent/dev", mnt], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode != 0 and "/nonexistent/dev" in r.stderr, "bad device: clear message")


def second_daemon(t, img, m):
    mnt = t.mountpoint("second")
    r = subprocess.run([t.tslabfs, img, mnt], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "in use" in r.stderr, "second daemon refused: " + r.stderr)


def helper(t, img):
    """mount.tslabfs as mount(8) calls it, daemonizing."""
    here = os.path.dirname(os.path.abspath(__file__))
    helper = os.path.join(here, "..", "..", "fs", "mount.tslabfs")
    mnt = t.mountpoint("helper")
    env = dict(os.environ, PATH=os.path.dirname(t.tslabfs) + ":" + os.environ["PATH"])
    r = subprocess.run(["sh", helper, img, mnt, "-o", "rw,noauto,nofail,commit=2"],
                       capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 0, "mount.tslabfs: " + r.stdout + r.stderr)
    try:
        check(os.path.ismount(mnt), "mount.tslabfs mounted")
        check(os.path.exists(os.path.join(mnt, "e1", "a")), "content through the helper mount")
        fst = [ln for ln in open("/proc/self/mounts") if " %s " % mnt in ln]
        check(fst and fst[0].split()[0] == img and "fuse.tslabfs" in fst[0],
              "fsname/subtype in /proc/mounts: %r" % fst)
    finally:
        subprocess.run(["umount", mnt], check=False)
    # the daemonized process flushes and exits after the unmount
    for _ in range(600):
        r = subprocess.run(["pgrep", "-f", "tslabfs .*%s" % mnt], capture_output=True)
        if r.returncode != 0:
            break
        import time
        time.sleep(0.1)


def main(t):
    img = t.mkfs(size="512M", zone="8M")
    m = t.mount(img)
    check(os.stat(m.path).st_ino == 1, "root inode is 1")
    files_and_data(m)
    names(m)
    unlink_rmdir(m)
    renames(m)
    links(m)
    special(m)
    attrs(m)
    xattrs(m)
    listing(m)
    statfs(m)
    second_daemon(t, img, m)
    before = snapshot(m, "e1")
    check(len(before) >= 19, "snapshot has content: %r" % sorted(before))
    m.umount()

    m = t.mount(img)
    after = snapshot(m, "e1")
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            raise Fail("after remount %s: %r != %r" % (k, str(before.get(k))[:200],
                                                        str(after.get(k))[:200]))
    check(read(m.p("rootfile")) == b"r", "root-epoch file persisted")
    stale_handles(t, m)
    m.umount()

    m = t.mount(img, opts="ro")
    check(read(m.p("e1", "synced")) == b"durable", "read on a ro mount")
    expect_errno(errno.EROFS, open, m.p("e1", "new"), "wb")
    expect_errno(errno.EROFS, os.mkdir, m.p("newdir"))
    expect_errno(errno.EROFS, os.unlink, m.p("e1", "a"))
    m.umount()
    cli(t, img)
    helper(t, img)
    unlink_durable(t)
    privileges(t)


if __name__ == "__main__":
    run(main)
