# SPDX-License-Identifier: MIT
"""Workloads for crash-state exploration and the model the oracle checks.

A workload is a list of writers; a writer is a list of operations (tuples).
Writers run concurrently (one thread each) on disjoint directories. Every
operation is bracketed by MARK records in the write log ("B id" before,
"E id" after it returned, "X id" when it failed), and after each "E" the
model of the namespace is updated and snapshotted under one lock, so the
snapshots are in the same order as the E marks in the log.

Operations (paths relative to the mount):
  ('mkdir', p) ('rmdir', p) ('create', p, data) ('write', p, off, data)
  ('append', p, data) ('trunc', p, size) ('link', a, b) ('unlink', p)
  ('rename', a, b) ('setx', p, name, value) ('chmod', p, mode)
  ('fsync', p) ('fdatasync', p) ('fsyncdir', p) ('syncfs',)
Top-level directories are epochs (epoch_depth=1): ('rmdir', '/E') drops
one.
"""
import errno
import os
import random
import threading

SYNC_OPS = ("fsync", "fdatasync", "fsyncdir", "syncfs")


def data(name, ver, size):
    """Deterministic content whose header names what it is."""
    head = ("%s:%d:%d\n" % (name, ver, size)).encode()
    if size <= len(head):
        return head[:size]
    r = random.Random("%s/%d" % (name, ver))
    return head + r.randbytes(size - len(head))


# ---- model -----------------------------------------------------------------

class Inode:
    __slots__ = ("kind", "data", "mode", "xattrs")

    def __init__(self, kind, mode):
        self.kind, self.data, self.mode, self.xattrs = kind, b"", mode, {}


class Model:
    """The namespace as the workload left it: path -> inode number."""

    def __init__(self):
        self.inodes = {1: Inode("d", 0o755)}
        self.paths = {"/": 1}
        self.next = 2

    def _new(self, p, kind, mode):
        self.inodes[self.next] = Inode(kind, mode)
        self.paths[p] = self.next
        self.next += 1

    def apply(self, op):
        k = op[0]
        if k == "mkdir":
            self._new(op[1], "d", 0o755)
        elif k == "rmdir":
            del self.paths[op[1]]
        elif k == "create":
            if op[1] not in self.paths:
                self._new(op[1], "f", 0o644)
            self.inodes[self.paths[op[1]]].data = op[2]
        elif k == "write":
            ino = self.inodes[self.paths[op[1]]]
            d, off = ino.data, op[2]
            if len(d) < off:
                d = d + bytes(off - len(d))
            ino.data = d[:off] + op[3] + d[off + len(op[3]):]
        elif k == "append":
            self.inodes[self.paths[op[1]]].data += op[2]
        elif k == "trunc":
            ino = self.inodes[self.paths[op[1]]]
            ino.data = ino.data[:op[2]] + bytes(max(0, op[2] - len(ino.data)))
        elif k == "link":
            self.paths[op[2]] = self.paths[op[1]]
        elif k == "unlink":
            del self.paths[op[1]]
        elif k == "rename":
            a, b = op[1], op[2]
            if self.paths.get(a) == self.paths.get(b):
                return  # two links to one inode: rename does nothing
            moved = {p: i for p, i in self.paths.items()
                     if p == a or p.startswith(a + "/")}
            for p in list(self.paths):
                if p == b or p.startswith(b + "/"):
                    del self.paths[p]
            for p, i in moved.items():
                del self.paths[p]
                self.paths[b + p[len(a):]] = i
        elif k == "setx":
            self.inodes[self.paths[op[1]]].xattrs[op[2]] = op[3]
        elif k == "chmod":
            self.inodes[self.paths[op[1]]].mode = op[2]

    def view(self):
        """path -> (kind, data, mode, xattrs as a sorted tuple, inode)."""
        v = {}
        for p, i in self.paths.items():
            n = self.inodes[i]
            v[p] = (n.kind, n.data, n.mode, tuple(sorted(n.xattrs.items())), i)
        return v


# ---- running ---------------------------------------------------------------

def _do(root, op):
    k = op[0]

    def P(p):
        return root + p
    if k == "mkdir":
        os.mkdir(P(op[1]), 0o755)
    elif k == "rmdir":
        os.rmdir(P(op[1]))
    elif k == "create":
        fd = os.open(P(op[1]), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            if op[2]:
                os.write(fd, op[2])
        finally:
            os.close(fd)
    elif k in ("write", "append"):
        fd = os.open(P(op[1]), os.O_WRONLY | (os.O_APPEND if k == "append" else 0))
        try:
            if k == "append":
                os.write(fd, op[2])
            else:
                os.pwrite(fd, op[3], op[2])
        finally:
            os.close(fd)
    elif k == "trunc":
        os.truncate(P(op[1]), op[2])
    elif k == "link":
        os.link(P(op[1]), P(op[2]))
    elif k == "unlink":
        os.unlink(P(op[1]))
    elif k == "rename":
        os.rename(P(op[1]), P(op[2]))
    elif k == "setx":
        os.setxattr(P(op[1]), op[2], op[3])
    elif k == "chmod":
        os.chmod(P(op[1]), op[2])
    elif k in ("fsync", "fdatasync", "fsyncdir"):
        fd = os.open(P(op[1]), os.O_RDONLY | (os.O_DIRECTORY if k == "fsyncdir" else 0))
        try:
            (os.fdatasync if k == "fdatasync" else os.fsync)(fd)
        finally:
            os.close(fd)
    elif k == "syncfs":
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.syncfs(fd) if hasattr(os, "syncfs") else _syncfs(fd)
        finally:
            os.close(fd)
    else:
        raise ValueError(op)


def _syncfs(fd):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syncfs(fd) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Recorder:
    """Runs writers and records ops, marks and model snapshots."""

    def __init__(self, root, marker):
        self.root, self.marker = root, marker
        self.model = Model()
        self.lock = threading.Lock()
        self.ops = []           # op id -> op tuple
        self.ok = []            # op id -> True / errno
        self.snap_of = []       # op id -> snapshot index after it (or None)
        self.snaps = [self.model.view()]
        self.errors = []

    def run_op(self, op):
        with self.lock:
            i = len(self.ops)
            self.ops.append(op)
            self.ok.append(None)
            self.snap_of.append(None)
        self.marker.mark("B %d" % i)
        try:
            _do(self.root, op)
        except OSError as e:
            with self.lock:
                self.marker.mark("X %d" % i)
                self.ok[i] = e.errno
            return e.errno
        with self.lock:
            self.marker.mark("E %d" % i)
            self.model.apply(op)
            self.ok[i] = True
            self.snaps.append(self.model.view())
            self.snap_of[i] = len(self.snaps) - 1
        return 0

    def run(self, writers):
        def w(ops):
            try:
                for op in ops:
                    self.run_op(op)
            except Exception as e:  # a bug in the workload itself
                self.errors.append(repr(e))
        if len(writers) == 1:
            w(writers[0])
            return
        ts = [threading.Thread(target=w, args=(ops,)) for ops in writers]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


# ---- generators ------------------------------------------------------------

def ace_workloads(big=False):
    """ACE-style: a fixed setup, then every sequence of 1..2 core
    operations (and a sample of 3) each followed by a persistence point on
    what it touched. Yields (name, [ops])."""
    sz = 6000 if big else 100
    setup = [("mkdir", "/A"), ("mkdir", "/A/D"), ("create", "/A/foo", data("foo", 0, sz)),
             ("create", "/A/D/bar", data("bar", 0, sz // 2)), ("mkdir", "/B"),
             ("create", "/B/baz", data("baz", 0, 50)), ("syncfs",)]
    core = [
        ("create", "/A/new", data("new", 0, sz)),
        ("write", "/A/foo", 10, data("foo", 1, 40)),
        ("append", "/A/foo", data("foo", 2, sz)),
        ("write", "/A/foo", 0, data("foo", 3, sz + 300)),
        ("trunc", "/A/foo", 20),
        ("trunc", "/A/foo", sz + 500),
        ("link", "/A/foo", "/A/D/foolink"),
        ("unlink", "/A/foo"),
        ("unlink", "/A/D/bar"),
        ("rename", "/A/foo", "/A/D/foo2"),
        ("rename", "/A/foo", "/A/D/bar"),
        ("rename", "/A/D", "/A/E"),
        ("mkdir", "/A/N"),
        ("rmdir", "/B"),
        ("rmdir", "/A/D"),
        ("setx", "/A/foo", "user.k", b"v1"),
        ("chmod", "/A/foo", 0o600),
    ]
    # rmdir needs an empty directory: these unlinks go first (no
    # persistence point of their own)
    pre = {"/B": [("unlink", "/B/baz")], "/A/D": [("unlink", "/A/D/bar")]}

    def persist(op, variant):
        # the persistence point ACE puts after an op: fsync of the file,
        # fdatasync, fsync of the parent, or syncfs
        k = op[0]
        tgt = op[2] if k in ("link", "rename") else op[1]
        parent = os.path.dirname(tgt) or "/"
        if k in ("unlink", "rmdir", "mkdir") or (k == "rename" and variant == 1):
            return ("fsyncdir", parent)
        if variant == 0:
            return ("fsync", tgt)
        if variant == 1:
            return ("fdatasync", tgt)
        return ("syncfs",)

    def valid(seq):
        m = Model()
        for op in setup:
            m.apply(op)
        for op in seq:
            k = op[0]
            src = op[1]
            if k in ("write", "append", "trunc", "link", "unlink", "rename", "setx",
                     "chmod") and src not in m.paths:
                return False
            if k in ("create", "mkdir") and op[1] in m.paths and k == "mkdir":
                return False
            if k == "link" and op[2] in m.paths:
                return False
            if k == "rename" and (op[2] in m.paths and m.inodes[m.paths[op[2]]].kind
                                  != m.inodes[m.paths[src]].kind):
                return False
            if k == "rename" and not os.path.dirname(op[2]) in m.paths:
                return False
            if k == "rmdir":
                if any(p.startswith(src + "/") for p in m.paths):
                    return False
            m.apply(op)
        return True

    n = 0
    for a in core:
        for v in range(3):
            seq = [a]
            if a[0] == "rmdir":
                seq = pre[a[1]] + seq
            if valid(seq):
                n += 1
                yield "ace1-%d" % n, setup + _with_persist(seq, persist, v)
    for a in core:
        for b in core:
            seq = [a, b]
            if b[0] == "rmdir":
                seq = [a] + pre[b[1]] + [b]
            if valid(seq):
                n += 1
                yield "ace2-%d" % n, setup + _with_persist(seq, persist, n % 3)
    r = random.Random(3)
    for _ in range(60):
        seq = [r.choice(core) for _ in range(3)]
        if valid(seq):
            n += 1
            yield "ace3-%d" % n, setup + _with_persist(seq, persist, n % 3)


def _with_persist(seq, persist, v):
    out = []
    for op in seq:
        out.append(op)
        if op not in (("unlink", "/B/baz"), ("unlink", "/A/D/bar")) or op is seq[-1]:
            out.append(persist(op, v))
    return out


def random_writer(seed, top, nops, sizes=(100, 4000, 6000, 12000)):
    """A longer random workload in directory TOP (created first)."""
    r = random.Random(seed)
    m = Model()
    ops = [("mkdir", top)]
    m.apply(ops[0])
    ver = 0
    for _ in range(nops):
        files = [p for p, i in m.paths.items() if m.inodes[i].kind == "f"]
        dirs = [p for p, i in m.paths.items() if m.inodes[i].kind == "d" and
                p.startswith(top)]
        c = r.random()
        ver += 1
        if c < 0.25 or not files:
            p = "%s/f%d" % (r.choice(dirs), r.randrange(12))
            if p in m.paths and m.inodes[m.paths[p]].kind == "d":
                continue
            op = ("create", p, data(p, ver, r.choice(sizes)))
        elif c < 0.35:
            p = r.choice(files)
            op = ("append", p, data(p, ver, r.choice(sizes) // 4))
        elif c < 0.45:
            p = r.choice(files)
            op = ("write", p, r.randrange(200), data(p, ver, r.choice(sizes) // 2))
        elif c < 0.5:
            op = ("trunc", r.choice(files), r.randrange(5000))
        elif c < 0.58:
            a = r.choice(files)
            b = "%s/f%d" % (r.choice(dirs), r.randrange(12))
            if b == a or (b in m.paths and m.inodes[m.paths[b]].kind == "d"):
                continue
            op = ("rename", a, b)
        elif c < 0.63:
            op = ("unlink", r.choice(files))
        elif c < 0.66:
            a = r.choice(files)
            b = "%s/l%d" % (r.choice(dirs), r.randrange(4))
            if b in m.paths:
                continue
            op = ("link", a, b)
        elif c < 0.70:
            op = ("setx", r.choice(files), "user.x%d" % r.randrange(2), b"v%d" % ver)
        elif c < 0.73:
            p = "%s/d%d" % (top, r.randrange(3))
            if p in m.paths:
                continue
            op = ("mkdir", p)
        elif c < 0.85:
            op = ("fsync", r.choice(files))
        elif c < 0.9:
            op = ("fdatasync", r.choice(files))
        elif c < 0.96:
            op = ("fsyncdir", r.choice(dirs))
        else:
            op = ("syncfs",)
        m.apply(op)
        ops.append(op)
    return ops


def random_workload(seed, writers=3, nops=40, epoch_drop=True):
    """WRITERS concurrent writers, each in its own epoch /wN; with
    EPOCH_DROP a last writer creates, fills and drops an epoch."""
    ws = [random_writer(seed * 10 + i, "/w%d" % i, nops) for i in range(writers)]
    if epoch_drop:
        ws[0] = ws[0] + [("mkdir", "/old"), ("create", "/old/a", data("old", seed, 300)),
                         ("fsync", "/old/a"), ("syncfs",), ("unlink", "/old/a"),
                         ("rmdir", "/old"), ("syncfs",)]
    return ws


def gc_workload(seed, nops=700):
    """Two writers overwriting 4-12 KB files, with a long-lived file every
    8th op, in a 16 MiB image of 1 MiB zones: ~11 MiB written, so zones
    are reclaimed (reset) and a background checkpoint is written while the
    writers run (seen in the logs: data-zone resets and a checkpoint zone
    finished before the unmount)."""
    ws = []
    for i in range(2):
        r = random.Random(seed * 7 + i)
        top = "/g%d" % i
        ops = [("mkdir", top)]
        for k in range(nops):
            if k % 8 == 7:
                p = "%s/keep%d" % (top, k)
                ops.append(("create", p, data(p, k, 4000)))
                continue
            p = "%s/f%d" % (top, r.randrange(25))
            ops.append(("create", p, data(p, k, r.choice((4000, 8000, 12000)))))
            if k % 10 == 9:
                ops.append((r.choice(("fsync", "fdatasync")), p))
            if k % 50 == 49:
                ops.append(("syncfs",))
        ws.append(ops)
    return ws
