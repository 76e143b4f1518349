# SPDX-License-Identifier: MIT
"""The crash-state oracle.

Inputs: the write log of a workload (wlog.Log), what the workload recorded
(workloads.Recorder: ops, snapshots of the model after each op in E-mark
order), and the tree read back from a mount of one crash state.

A crash state keeps every record up to flush F_k, and of the records after
it (before flush F_k+1) a per-zone prefix, the last write possibly torn.
R = the last record kept.

Acknowledged: a sync op (fsync, fdatasync, fsync of a directory, syncfs)
whose "E" mark is before F_k+1. (Its flush was before its E mark, so at or
before F_k: everything it waited for is in the state.) Its guarantee for a
path holds "as of" the last snapshot before the op began (with concurrent
writers, ops that ended while it ran are not covered); ops that began before R may have changed
the path since, so each checked component of the path must equal its
value in the ack's snapshot or in a snapshot after an op that began before
R (each component on its own: unsynced changes persist in any order).

An extents file's content may mix, chunk by chunk (4,020 bytes), the
versions allowed for it, with the size of one of them (_chunkwise).

Checked components per ack:
  fsync P       P's presence/kind, content, mode, each xattr
  fdatasync P   P's presence/kind, content
  fsyncdir D    D's presence and every name ever in D: presence/kind
  syncfs        every path ever in the model: all of the above
Further, for every state:
  - every name in the tree was created by the workload at some point;
  - no file holds bytes never written: its content is a version some file
    had, or else each byte equals a byte some version had at that offset
    (or is zero);
  - rename atomicity: a rename whose source was acknowledged before the
    rename began, to a new name in an acknowledged directory, with no
    other op on either name since: exactly one of the two names holds
    the file;
  - the mount succeeds, and reading never fails.
Intermediate contents of one write(), split by the kernel into page-sized
FUSE requests, count as values of the inode at that op (_partials).
"""
import bisect
import os

from wlog import FLUSH, MARK

INF = float("inf")


class Trace:
    """A workload's log + recorder, indexed for the oracle."""

    def __init__(self, log, rec):
        self.log, self.rec = log, rec
        self.flushes = log.flushes()
        n = len(rec.ops)
        self.begin = [INF] * n
        self.end = [INF] * n
        for r in log.recs:
            if r.type == MARK:
                k, i = r.text.split()
                i = int(i)
                if k == "B":
                    self.begin[i] = r.i
                elif k == "E":
                    self.end[i] = r.i
        # snapshot j (j >= 1) was taken after op op_of_snap[j]
        self.op_of_snap = [None] * len(rec.snaps)
        for i, j in enumerate(rec.snap_of):
            if j is not None:
                self.op_of_snap[j] = i
        self.all_paths = set()
        self.versions = set()
        for v in rec.snaps:
            self.all_paths.update(v)
            for val in v.values():
                if val[0] == "f":
                    self.versions.add(val[1])
        # An ack covers what returned before the sync op began: with
        # concurrent writers, ops that ended while it ran are not covered.
        # pin[i] = the snapshot after the last E mark before op i's B mark.
        ends = sorted(e for e in self.end if e != INF)
        self.pin = [bisect.bisect_left(ends, b) if b != INF else None for b in self.begin]
        self.by_offset = None
        self._iv = {}
        self._live_key = None
        self._changes()
        # syncfs(2) does not reach a FUSE daemon (tslabfs(8)): not an ack.
        # Every fsync is a sync of everything (tslabfs(8)); False checks
        # only what POSIX promises for the file or directory synced.
        self.global_fsync = True
        self.sync_ops = [i for i, op in enumerate(rec.ops)
                         if op[0] in ("fsync", "fdatasync", "fsyncdir")
                         and rec.ok[i] is True]

    def _changes(self):
        """Per path and per inode: [(snapshot, value)] where it changed."""
        self.path_changes, self.inode_changes, self.creates = {}, {}, {}
        prev_p, prev_i = {}, {}
        for j, snap in enumerate(self.rec.snaps):
            iv = self.inode_vals(j)
            for p in set(snap) | set(prev_p):
                v = snap.get(p)
                if j == 0 or prev_p.get(p) != v:
                    self.path_changes.setdefault(p, [(0, None)] if j else []).append((j, v))
            op = self.rec.ops[self.op_of_snap[j]] if j else None
            for i in set(iv) | set(prev_i):
                v = iv.get(i)
                if j == 0 or prev_i.get(i) != v:
                    ch = self.inode_changes.setdefault(i, [(0, None)] if j else [])
                    for pv in _partials(op, prev_i.get(i), v):
                        ch.append((j, pv))
                    ch.append((j, v))
            prev_p, prev_i = snap, iv
            if j:
                op = self.rec.ops[self.op_of_snap[j]]
                if op[0] == "create":
                    self.creates.setdefault(op[1], []).append(j)
        self._iv = {}

    def window(self, changes, j0, live):
        """Values of CHANGES at snapshot j0 and at every later snapshot in
        LIVE (sorted)."""
        js = [c[0] for c in changes]
        k = bisect.bisect_right(js, j0) - 1
        out = [changes[k][1] if k >= 0 else None]
        for n in range(k + 1, len(changes)):
            c = changes[n][0]
            m = bisect.bisect_right(js, c)
            nxt = js[m] if m < len(js) else float("inf")
            x = bisect.bisect_left(live, c)
            if x < len(live) and live[x] < nxt:
                out.append(changes[n][1])
        return out

    def live_set(self, live):
        if self._live_key is not live:
            self._live_key, self._live = live, set(live)
        return self._live

    def inode_vals(self, j):
        """inode -> value in snapshot j."""
        c = self._iv.get(j)
        if c is None:
            c = self._iv[j] = {v[4]: v for v in self.rec.snaps[j].values()}
        return c

    def next_flush(self, fk):
        for f in self.flushes:
            if f > fk:
                return f
        return INF

    def byte_ok(self, data):
        if self.by_offset is None:
            self.by_offset = {}
            for d in self.versions:
                for o, b in enumerate(d):
                    self.by_offset.setdefault(o, set()).add(b)
        return all(b == 0 or b in self.by_offset.get(o, ()) for o, b in enumerate(data))


PAGE = 4096


def _partials(op, pre, post):
    """Contents a crash can show part-way through OP: the kernel sends a
    write() as FUSE WRITE requests split at page boundaries, and each
    request is applied (and may be committed) on its own."""
    if op is None or post is None or post[0] != "f":
        return []
    k = op[0]
    old = pre[1] if pre is not None and pre[0] == "f" else b""
    if k == "create":
        off, d, old = 0, op[2], b""
    elif k == "write":
        off, d = op[2], op[3]
    elif k == "append":
        off, d = len(old), op[2]
    else:
        return []
    out = []
    if k == "create":
        # open(O_TRUNC) empties the inode (whatever name it is opened by)
        # before the write
        out.append((post[0], b"", post[2], post[3], post[4]))
    for b in range((off // PAGE + 1) * PAGE, off + len(d), PAGE):
        n = b - off
        base = old + bytes(max(0, off - len(old)))
        out.append((post[0], base[:off] + d[:n] + base[off + n:], post[2], post[3], post[4]))
    return out


def _children(paths, d):
    pre = d.rstrip("/") + "/"
    return [p for p in paths if p != d and p.startswith(pre) and "/" not in p[len(pre):]]


def required(tr, fk, fn):
    """(path, component) -> latest snapshot index an ack pins it to."""
    req = {}

    def pin(p, comp, j):
        if req.get((p, comp), -1) < j:
            req[(p, comp)] = j
    jall = -1
    for i in tr.sync_ops:
        if tr.end[i] >= fn:
            continue
        op, j = tr.rec.ops[i], tr.pin[i]
        k = op[0]
        if tr.global_fsync:
            # tslabfs(8): "fsync(2) of a file, fsync(2) of a directory and
            # unmounting make everything written before them durable"
            jall = max(jall, j)
        elif k in ("fsync", "fdatasync"):
            pin(op[1], "kind", j)
            pin(op[1], "data", j)
            if k == "fsync":
                pin(op[1], "mode", j)
                pin(op[1], "xattr", j)
        elif k == "fsyncdir":
            pin(op[1], "kind", j)
            for p in _children(tr.all_paths, op[1]):
                pin(p, "kind", j)
    if jall >= 0:
        for p in tr.all_paths:
            for comp in ("kind", "data", "mode", "xattr"):
                pin(p, comp, jall)
    return req


def _comp(val, comp):
    if val is None:
        return None
    if comp == "kind":
        return val[0]
    if comp == "data":
        return val[1] if val[0] == "f" else None
    if comp == "mode":
        return val[2]
    return val[3]


# An extents file (more than 4,000 bytes, docs/design.md "File data as
# extents") persists an unsynced write chunk by chunk: each chunk record is
# its own version, its size comes with its head.
CHUNK = 4020


def _chunkwise(got, allowed):
    """GOT is (or was) an extents file whose size is an allowed one and each of whose
    chunks equals that chunk of some allowed version (zeros past its end)."""
    vers = [v for v in allowed if isinstance(v, bytes)]
    if not isinstance(got, bytes) or max([len(got)] + [len(v) for v in vers]) <= 4000:
        return False  # never an extents file (one stays one when it shrinks)
    if len(got) not in set(len(v) for v in vers):
        return False
    for o in range(0, len(got), CHUNK):
        piece = got[o:o + CHUNK]
        if not any(v[o:o + len(piece)].ljust(len(piece), b"\0") == piece for v in vers):
            return False
    return True


def check(tr, fk, R, tree):
    """Violations (strings) of crash state (flush fk, last record R) whose
    mounted tree is TREE: path -> (kind, data, mode, xattrs) or an error
    string for the path."""
    bad = []
    rec = tr.rec
    fn = tr.next_flush(fk)
    req = required(tr, fk, fn)
    # snapshots an op that began before R produced
    live = [j for j in range(1, len(rec.snaps))
            if tr.begin[tr.op_of_snap[j]] < R]
    for (p, comp), j0 in sorted(req.items()):
        act = tree.get(p)
        if isinstance(act, str):
            bad.append("%s: %s (acknowledged %s)" % (p, act, comp))
            continue
        # the values P had from j0 on in the snapshots of live ops; and the
        # values of the inode(s) P named then, at any of those times: a
        # name change and a content change persist independently
        pvals = tr.window(tr.path_changes.get(p, [(0, None)]), j0, live)
        vals = [None] if None in pvals else []
        for i in set(v[4] for v in pvals if v is not None):
            vals += [v for v in tr.window(tr.inode_changes[i], j0, live) if v is not None]
        if comp == "xattr":
            if act is None or act[0] != "f" and act[0] != "d":
                continue
            names = set(n for v in vals for n, _ in (_comp(v, comp) or ()))
            names.update(n for n, _ in act[3])
            a = dict(act[3])
            for n in sorted(names):
                allowed = set()
                for v in vals:
                    if v is not None:
                        allowed.add(dict(v[3]).get(n))
                if allowed and a.get(n) not in allowed:
                    bad.append("%s: xattr %s = %r, acknowledged %r" %
                               (p, n, a.get(n), sorted(allowed, key=repr)))
            continue
        if comp == "kind":
            allowed = set(_comp(v, comp) for v in pvals)
        else:
            allowed = set(_comp(v, comp) for v in vals)
        if comp in ("data", "mode") and (act is None or act[0] != "f" and comp == "data"):
            continue  # presence is the kind check's business
        if comp == "data" and any(j > j0 and j in tr.live_set(live)
                                  for j in tr.creates.get(p, ())):
            allowed.add(b"")  # open(O_TRUNC) before the write of a create
        got = _comp(act, comp)
        if comp == "mode" and got is not None:
            got &= 0o7777
        if got not in allowed and not (comp == "data" and _chunkwise(got, allowed)):
            bad.append("%s: %s = %s, acknowledged %s (snapshot %d, fk %s R %s)" % (
                p, comp, _short(got), " | ".join(sorted(_short(x) for x in allowed)),
                j0, fk, R))
    for p, act in tree.items():
        if p not in tr.all_paths:
            bad.append("%s: a name the workload never created" % p)
        elif isinstance(act, str):
            bad.append("%s: %s" % (p, act))
        elif act[0] == "f" and act[1] not in tr.versions and act[1] != b"" \
                and not tr.byte_ok(act[1]):
            bad.append("%s: holds bytes never written (%d bytes)" % (p, len(act[1])))
    bad += _renames(tr, R, req, tree)
    return bad


def _renames(tr, R, req, tree):
    rec, bad = tr.rec, []
    for r, op in enumerate(rec.ops):
        if op[0] != "rename" or rec.ok[r] is not True or tr.begin[r] >= R:
            continue
        a, b = op[1], op[2]
        jr = rec.snap_of[r]
        before = rec.snaps[jr - 1]
        X = before.get(a)
        if X is None or X[0] != "f" or before.get(b) is not None:
            continue
        ja = req.get((a, "data"))
        jd = req.get((os.path.dirname(b) or "/", "kind"))
        if ja is None or jd is None or ja >= jr or jd >= jr:
            continue  # not acknowledged before the rename (or pinned after it)
        if tr.end[tr.op_of_snap[ja]] >= tr.begin[r]:
            continue

        def touches(o):
            return any(isinstance(x, str) and x.startswith("/") and
                       (x == a or x == b or a.startswith(x + "/") or b.startswith(x + "/"))
                       for x in o[1:])
        if any(i != r and rec.ok[i] is True and tr.begin[i] < R and touches(o) and
               o[0] not in ("fsync", "fdatasync", "fsyncdir", "syncfs") and
               rec.snap_of[i] > ja for i, o in enumerate(rec.ops)):
            continue
        ta, tb = tree.get(a), tree.get(b)
        ha = ta is not None and not isinstance(ta, str) and ta[1] == X[1]
        hb = tb is not None and not isinstance(tb, str) and tb[1] == X[1]
        if ha and hb:
            bad.append("rename %s -> %s: both names hold the file" % (a, b))
        elif ta is None and tb is None:
            bad.append("rename %s -> %s: neither name holds the file" % (a, b))
    return bad


def _short(v):
    if isinstance(v, bytes):
        return "<%d bytes %s>" % (len(v), v[:24])
    return repr(v)


def read_tree(root):
    """path -> (kind, data, mode, xattrs) of everything under ROOT, or an
    error string for a path that could not be read."""
    out = {}

    def xattrs(p):
        return tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False))
                            for n in os.listxattr(p, follow_symlinks=False)
                            if n.startswith("user.") and not n.startswith("user.tslab.")))

    def walk(rel):
        full = root + (rel if rel != "/" else "")
        try:
            names = os.listdir(full or "/")
        except OSError as e:
            out[rel] = "listdir: %s" % os.strerror(e.errno)
            return
        for n in names:
            p = (rel.rstrip("/") + "/" + n)
            fp = root + p
            try:
                st = os.lstat(fp)
                if os.path.stat.S_ISDIR(st.st_mode):
                    out[p] = ("d", None, st.st_mode & 0o7777, xattrs(fp))
                    walk(p)
                elif os.path.stat.S_ISREG(st.st_mode):
                    with open(fp, "rb") as f:
                        d = f.read()
                    if len(d) != st.st_size:
                        out[p] = "size %d but read %d bytes" % (st.st_size, len(d))
                    else:
                        out[p] = ("f", d, st.st_mode & 0o7777, xattrs(fp))
                else:
                    out[p] = "unexpected file type %o" % st.st_mode
            except OSError as e:
                out[p] = "%s" % os.strerror(e.errno)
    try:
        st = os.lstat(root)
        out["/"] = ("d", None, st.st_mode & 0o7777, xattrs(root))
    except OSError as e:
        out["/"] = os.strerror(e.errno)
    walk("/")
    return out
