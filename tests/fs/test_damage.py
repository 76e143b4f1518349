#!/usr/bin/env python3
"""Damaged images: never serve wrong data (issue 11).

Regression tests for the five defects of issue 11, then a campaign: small
filesystems (three epochs with files of 0 B - 9 KB, xattrs, symlinks, hard
links, overwrites, unlinks, renames, and a fourth epoch dropped), cleanly
unmounted or synced and SIGKILLed, are damaged (bit flips, random or zeroed
4 KiB blocks, targeted fields of the emulator header, zone table,
superblock, checkpoint, journal, page headers and records, truncation),
mounted, walked, read in full, and compared with the model. Images that are
not intact go through fsck.tslabfs -n, -p and -n again and are mounted and
compared once more.

Outcomes: intact / refused with a message / EIO on damaged files / repaired
by fsck (second fsck clean, everything not reported lost intact) — and
silent wrong content, silently missing, resurrected, crash and hang, which
must all be 0.

Deterministic: fixed seeds. TSLAB_DAMAGE_IMAGES=N sizes the campaign
(default 300), TSLAB_DAMAGE_ONLY=I reruns image I alone (its log is kept
with TSLAB_KEEP=1), TSLAB_DAMAGE_SEED changes the seed for a longer run, TSLAB_DAMAGE_NO_FSCK=1
judges the first mount only (to measure a tree without fsck.tslabfs).
"""
import atexit
import ctypes
import errno
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslabtest import Fail, check, is_mounted, run  # noqa: E402

XXH = ctypes.CDLL("libxxhash.so.0")
XXH.XXH3_64bits.restype = ctypes.c_uint64
XXH.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

# Generous: a mount, a walk or an fsck of these images takes well under a
# second on a quiet machine; only a real hang gets near this.
HANG_S = 180

SIZE, ZONE = "16M", "1M"


def xxh64(b):
    return XXH.XXH3_64bits(bytes(b), len(b))


# ---- the emulated device layout (docs/format.md) ---------------------------

class Layout:
    def __init__(self, img):
        with open(img, "rb") as f:
            h = f.read(128)
            self.nz, self.zsize, self.cap = struct.unpack_from("<IQQ", h, 20)
            self.lba = struct.unpack_from("<I", h, 16)[0]
            self.first = struct.unpack_from("<Q", h, 64)[0]
            f.seek(4096)
            t = f.read(8 * self.nz)
        self.wp, self.cond = [], []
        for z in range(self.nz):
            e = struct.unpack_from("<Q", t, 8 * z)[0]
            self.wp.append((e & ((1 << 40) - 1)) * self.lba)
            self.cond.append((e >> 40) & 0xff)

    def zoff(self, z, off=0):
        return self.first + z * self.zsize + off

    def written(self):
        return [z for z in range(self.nz) if self.wp[z] > 0]


def rd(img, off, n):
    with open(img, "rb") as f:
        f.seek(off)
        return f.read(n)


def wr(img, off, b):
    with open(img, "r+b") as f:
        f.seek(off)
        f.write(b)


def flip(img, off, bit):
    b = rd(img, off, 1)
    wr(img, off, bytes([b[0] ^ (1 << bit)]))


def pages(img, lay, z):
    """(offset, used, epoch) of the valid-looking pages of zone z."""
    out, off = [], 0
    data = rd(img, lay.zoff(z), lay.wp[z])
    while off + 32 <= len(data):
        if data[off:off + 4] != b"TSPG":
            break
        epoch, used = struct.unpack_from("<IH", data, off + 8)
        out.append((off, used, epoch))
        off += (used + lay.lba - 1) // lay.lba * lay.lba
    return out


def records(img, lay, z, poff, used):
    """Offsets (in the zone) and lengths of the records of a page."""
    data = rd(img, lay.zoff(z, poff), used)
    out, off = [], 32
    while off + 44 <= used:
        flags = data[off + 7]
        nl = data[off + 6]
        pl = struct.unpack_from("<H", data, off + 10)[0]
        ext = 0
        for bit, n in ((1, 8), (2, 8), (4, 8), (8, 8), (16, 4), (32, 4), (64, 8)):
            if flags & bit:
                ext += n
        ln = 44 + ext + nl + pl
        out.append((poff + off, ln))
        off += ln
    return out


def find_record(img, lay, contents):
    """(zone, offset, length) of a record whose payload is one of CONTENTS."""
    want = {c[-16:]: c for c in contents}
    for z in lay.written():
        if z < 4:
            continue
        for poff, used, ep in pages(img, lay, z):
            for roff, ln in records(img, lay, z, poff, used):
                b = rd(img, lay.zoff(z, roff), ln)
                c = want.get(b[-16:])
                if c is not None and b.endswith(c):
                    return z, roff, ln
    return None


def sb_newest(img, lay):
    """Zone offset of the newest superblock copy (zone 0 or 1)."""
    best = None
    for z in (0, 1):
        for off in range(0, lay.wp[z], 4096):
            b = rd(img, lay.zoff(z, off), 4096)
            if b[:8] != b"TSLABFS\0":
                continue
            seq = struct.unpack_from("<Q", b, 144)[0]
            if best is None or seq > best[0]:
                best = (seq, z, off)
    return best


def sb_rewrite(img, lay, fn):
    """Apply fn to the newest superblock copy and fix its checksum."""
    _, z, off = sb_newest(img, lay)
    b = bytearray(rd(img, lay.zoff(z, off), 4096))
    fn(b)
    b[152:160] = b"\0" * 8
    struct.pack_into("<Q", b, 152, xxh64(b))
    wr(img, lay.zoff(z, off), b)


def rec_rewrite(img, lay, z, roff, ln, fn):
    """Apply fn to a record and fix its checksum (a forged record)."""
    b = bytearray(rd(img, lay.zoff(z, roff), ln))
    fn(b)
    struct.pack_into("<I", b, 0, xxh64(b[4:]) & 0xffffffff)
    wr(img, lay.zoff(z, roff), b)


# ---- model and workload -------------------------------------------------------

def data_for(rng, size):
    return rng.randbytes(size)


class Model:
    def __init__(self):
        self.files = {}    # path -> bytes
        self.links = {}    # path -> symlink target
        self.dirs = set()
        self.xattrs = {}   # path -> {name: value}
        self.gone = set()  # paths that must not come back


def workload(env, mnt, rng, model):
    p = lambda *a: os.path.join(mnt.path, *a)  # noqa: E731
    for e in ("e1", "e2", "e3", "e4"):
        os.mkdir(p(e))
        model.dirs.add(e)
    for e in ("e1", "e2", "e3", "e4"):
        os.mkdir(p(e, "d"))
        model.dirs.add(e + "/d")
        for i in range(rng.randrange(20, 36)):
            rel = "%s/%sf%d" % (e, "d/" if i % 3 == 0 else "", i)
            size = rng.choice([0, 1, 15, 100, 3000, 4000, 5000, 9000])
            b = data_for(rng, size)
            with open(p(rel), "wb") as f:
                f.write(b)
            model.files[rel] = b
            if i % 5 == 0:
                v = rng.randbytes(rng.choice([3, 40, 200]))
                os.setxattr(p(rel), "user.k", v)
                model.xattrs[rel] = {"user.k": v}
        os.symlink("f1", p(e, "sl"))
        model.links[e + "/sl"] = "f1"
    # overwrites, xattr changes, unlinks, renames, hard links
    for rel in sorted(model.files):
        r = rng.random()
        if r < 0.15:
            b = data_for(rng, rng.choice([7, 500, 4100]))
            with open(p(rel), "wb") as f:
                f.write(b)
            model.files[rel] = b
        elif r < 0.22:
            os.unlink(p(rel))
            del model.files[rel]
            model.xattrs.pop(rel, None)
            model.gone.add(rel)
        elif r < 0.30:
            new = rel + "r"
            os.rename(p(rel), p(new))
            model.files[new] = model.files.pop(rel)
            if rel in model.xattrs:
                model.xattrs[new] = model.xattrs.pop(rel)
            model.gone.add(rel)
        elif r < 0.34 and rel in model.xattrs:
            v = rng.randbytes(30)
            os.setxattr(p(rel), "user.k", v)
            model.xattrs[rel]["user.k"] = v
        elif r < 0.38:
            os.link(p(rel), p(rel + "h"))
            model.files[rel + "h"] = model.files[rel]
            if rel in model.xattrs:
                model.xattrs[rel + "h"] = model.xattrs[rel]
    # the fourth epoch is dropped
    shutil.rmtree(p("e4"))
    for rel in [r for r in model.files if r.startswith("e4/")]:
        del model.files[rel]
        model.xattrs.pop(rel, None)
        model.gone.add(rel)
    model.links.pop("e4/sl")
    model.dirs = {d for d in model.dirs if not d.startswith("e4")}
    model.gone.update({"e4", "e4/sl"})


def syncfs(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        check(libc.syncfs(fd) == 0, "syncfs failed")
    finally:
        os.close(fd)


def make_base(env, name, seed, crash):
    img = env.mkfs(name, size=SIZE, zone=ZONE)
    m = env.mount(img, path=env.mountpoint("mnt-" + name))
    model = Model()
    workload(env, m, random.Random(seed), model)
    if crash:
        # fsync'd, then SIGKILLed: everything in the model is durable
        for rel in sorted(model.files):
            fd = os.open(m.p(rel), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        for rel in sorted(model.dirs) + [""]:
            fd = os.open(m.p(rel), os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(fd)
            os.close(fd)
        syncfs(m.path)
        m.kill()
    else:
        m.umount()
    return img, model


# ---- mounting, walking, comparing ------------------------------------------------

LIVE = []


def kill_live():
    """At exit: every daemon this test started and did not stop."""
    for d in list(LIVE):
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        if is_mounted(d.path):
            subprocess.run(["umount", "-l", d.path], check=False)
    LIVE.clear()


atexit.register(kill_live)


def umount_retry(path, proc=None):
    """umount(8) PATH, again for up to 30 s while it fails: it fails with
    EBUSY while anything briefly holds the mount (a path lookup in flight,
    as for tslabtest.Mount.umount), and a daemon left idle by a failed
    umount is not a hang. The last exit code; None if it was not mounted
    (or PROC, its daemon, had exited)."""
    rc = None
    for _ in range(60):
        if (proc is not None and proc.poll() is not None) or not is_mounted(path):
            break
        rc = subprocess.run(["umount", path], check=False,
                            stderr=subprocess.DEVNULL).returncode
        if rc == 0:
            break
        time.sleep(0.5)
    return rc


class Daemon:
    """tslabfs -f with a bounded wait; no Fail on a refused mount."""

    def __init__(self, env, img, path, opts=None):
        self.path = path
        self.log = os.path.join(env.dir, "d-%d.log" % env.nmounts)
        env.nmounts += 1
        args = [env.tslabfs, "-f"] + (["-o", opts] if opts else []) + [img, path]
        with open(self.log, "w") as lf:
            self.proc = subprocess.Popen(args, stdout=lf, stderr=subprocess.STDOUT)
        LIVE.append(self)
        self.hang = False
        deadline = time.time() + HANG_S
        while not is_mounted(path) and self.proc.poll() is None:
            if time.time() > deadline:
                self.hang = True
                self.proc.kill()
                self.proc.wait()
                break
            time.sleep(0.02)
        self.mounted = is_mounted(path)

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def note_stacks(self):
        """Before a hung daemon is killed: where each of its threads waits
        (kernel stacks), appended to its log for the failure report."""
        lines = ["--- hung: umount returned %s; mounted now: %s; thread stacks ---" % (
            getattr(self, "umount_rc", None), is_mounted(self.path))]
        task = "/proc/%d/task" % self.proc.pid
        for tid in sorted(os.listdir(task)) if os.path.isdir(task) else []:
            try:
                with open("%s/%s/comm" % (task, tid)) as f:
                    comm = f.read().strip()
                with open("%s/%s/stack" % (task, tid)) as f:
                    top = [ln.split()[-1] for ln in f.read().splitlines()[:6]]
            except OSError as e:
                comm, top = "?", [str(e)]
            lines.append("%s %s: %s" % (tid, comm, " < ".join(top)))
        if shutil.which("fuser") and is_mounted(self.path):  # who holds the mount
            r = subprocess.run(["fuser", "-vm", self.path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, check=False)
            lines += ["fuser: " + ln for ln in r.stdout.splitlines()]
        if shutil.which("gdb"):  # user-space stacks, when gdb is there
            r = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-nx",
                                "-ex", "thread apply all bt 12"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=120, check=False)
            lines += [ln for ln in r.stdout.splitlines()
                      if ln.startswith(("Thread ", "#"))]
        with open(self.log, "a") as f:
            f.write("\n".join(lines) + "\n")

    def umount(self):
        """0 clean exit, 'crash', or 'hang'."""
        self.umount_rc = umount_retry(self.path, self.proc)
        try:
            rc = self.proc.wait(HANG_S)
        except subprocess.TimeoutExpired:
            self.note_stacks()
            self.proc.kill()
            self.proc.wait()
            rc = "hang"
        if is_mounted(self.path):
            subprocess.run(["umount", "-l", self.path], check=False)
        if self in LIVE:
            LIVE.remove(self)
        if isinstance(rc, int) and rc < 0:
            return "crash"
        return rc


def walk(mnt, model, lost_prefixes=()):
    """Compare the mount with the model: a dict of counts and details."""
    res = {"ok": 0, "eio": 0, "wrong": [], "missing": [], "resurrected": [],
           "lost": 0}

    def p(rel):
        return os.path.join(mnt, rel)

    def is_lost(rel):
        return any(rel == x or rel.startswith(x + "/") for x in lost_prefixes)

    eio_dirs = set()
    for rel, want in sorted(model.files.items()):
        try:
            with open(p(rel), "rb") as f:
                got = f.read()
            xa = model.xattrs.get(rel, {})
            for k, v in xa.items():
                if os.getxattr(p(rel), k) != v:
                    got = None
        except OSError as e:
            if e.errno == errno.EIO:
                res["eio"] += 1
                continue
            if e.errno == errno.ENOENT and is_lost(rel):
                res["lost"] += 1
                continue
            if e.errno == errno.ENOENT and any(rel.startswith(d + "/") for d in eio_dirs):
                res["eio"] += 1
                continue
            res["missing"].append("%s (%s)" % (rel, os.strerror(e.errno)))
            continue
        if got != want:
            res["wrong"].append(rel)
        else:
            res["ok"] += 1
    for rel, tgt in model.links.items():
        try:
            if os.readlink(p(rel)) != tgt:
                res["wrong"].append(rel)
        except OSError as e:
            if e.errno == errno.EIO or (e.errno == errno.ENOENT and is_lost(rel)):
                continue
            res["missing"].append(rel)
    # nothing that was deleted may be there
    for rel in sorted(model.gone):
        try:
            os.lstat(p(rel))
        except OSError:
            continue
        res["resurrected"].append(rel)
    # and nothing unknown either
    known = set(model.files) | set(model.links) | model.dirs
    for top, dirs, files in os.walk(mnt, onerror=lambda e: None):
        for n in dirs + files:
            rel = os.path.relpath(os.path.join(top, n), mnt)
            if rel not in known:
                res["resurrected"].append(rel)
    return res


def fsck(env, img, flag):
    r = subprocess.run([env.fsck, flag, img], capture_output=True, text=True,
                       timeout=HANG_S)
    return r.returncode, r.stdout + r.stderr


# ---- damage ------------------------------------------------------------------------

KINDS = ["bitflip", "block-random", "block-zero", "emul-header", "zone-table", "sb",
         "ckpt", "journal", "page-header", "record", "truncate"]


def damage(img, rng, kind):
    """Damage img; return a description."""
    lay = Layout(img)
    data = [z for z in lay.written() if z >= 4]
    if kind == "bitflip":
        z = rng.choice(lay.written())
        off = rng.randrange(min(lay.wp[z], lay.cap))
        flip(img, lay.zoff(z, off), rng.randrange(8))
        return "bit flip zone %d off %d" % (z, off)
    if kind in ("block-random", "block-zero"):
        z = rng.choice(lay.written())
        off = rng.randrange(max(1, min(lay.wp[z], lay.cap) // 4096)) * 4096
        b = rng.randbytes(4096) if kind == "block-random" else b"\0" * 4096
        wr(img, lay.zoff(z, off), b)
        return "%s zone %d off %d" % (kind, z, off)
    if kind == "emul-header":
        off = rng.randrange(128)
        flip(img, off, rng.randrange(8))
        return "emulator header byte %d" % off
    if kind == "zone-table":
        z = rng.randrange(lay.nz)
        flip(img, 4096 + 8 * z + rng.randrange(8), rng.randrange(8))
        return "zone table entry %d" % z
    if kind == "sb":
        s = sb_newest(img, lay)
        off = rng.randrange(200)
        flip(img, lay.zoff(s[1], s[2] + off), rng.randrange(8))
        return "superblock byte %d" % off
    if kind == "ckpt":
        ck = [z for z in data if rd(img, lay.zoff(z), 8) == b"TSCKZONE"]
        if not ck:
            return damage(img, rng, "record")
        z = rng.choice(ck)
        off = rng.randrange(min(lay.wp[z], lay.cap))
        flip(img, lay.zoff(z, off), rng.randrange(8))
        return "checkpoint zone %d off %d" % (z, off)
    if kind == "journal":
        js = [z for z in (2, 3) if lay.wp[z]]
        if not js:
            return damage(img, rng, "page-header")
        z = rng.choice(js)
        off = rng.randrange(lay.wp[z])
        flip(img, lay.zoff(z, off), rng.randrange(8))
        return "journal zone %d off %d" % (z, off)
    if kind in ("page-header", "record"):
        cands = [(z, pg) for z in data for pg in pages(img, lay, z)]
        if not cands:
            return damage(img, rng, "bitflip")
        z, (poff, used, ep) = rng.choice(cands)
        if kind == "page-header":
            off = poff + rng.randrange(32)
            flip(img, lay.zoff(z, off), rng.randrange(8))
            return "page header zone %d off %d" % (z, off)
        recs = records(img, lay, z, poff, used)
        if not recs:
            return damage(img, rng, "bitflip")
        roff, ln = rng.choice(recs)
        off = roff + rng.randrange(min(ln, 44))
        flip(img, lay.zoff(z, off), rng.randrange(8))
        return "record zone %d off %d" % (z, off)
    if kind == "truncate":
        size = os.path.getsize(img)
        new = rng.randrange(4096, size)
        os.truncate(img, new)
        return "truncated to %d" % new
    raise ValueError(kind)


# ---- one image ------------------------------------------------------------------------

def lost_prefixes(out):
    return [line.split(None, 1)[1].strip().lstrip("/") for line in out.splitlines()
            if line.startswith("  lost ")]


def one_image(env, i, base, model, kind, rng, mnt):
    img = os.path.join(env.dir, "dmg.img")
    shutil.copyfile(base, img)
    what = damage(img, rng, kind)
    d = Daemon(env, img, mnt)
    served_eio = False
    if d.hang:
        return "hang", what, d.text()
    if d.mounted:
        res = walk(mnt, model)
        rc = d.umount()
        if rc in ("crash", "hang"):
            return rc, what, d.text()
        if res["wrong"]:
            return "wrong", what + " " + str(res["wrong"][:5]), d.text()
        if res["resurrected"]:
            return "resurrected", what + " " + str(res["resurrected"][:5]), d.text()
        if res["missing"]:
            return "missing", what + " " + str(res["missing"][:5]), d.text()
        served_eio = res["eio"] > 0
        if not served_eio and os.environ.get("TSLAB_DAMAGE_NO_FSCK"):
            return "intact", what, ""
        if not served_eio:
            r1, out = fsck(env, img, "-n")
            if r1 == 0:
                return "intact", what, ""
    else:
        rc = d.umount()
        if rc in ("crash", "hang"):
            return rc, what, d.text()
        if "damage" not in d.text() and "tslabfs:" not in d.text():
            return "refused-silently", what, d.text()
    if os.environ.get("TSLAB_DAMAGE_NO_FSCK"):
        # first mount only (for binaries without fsck.tslabfs: "before")
        return ("eio" if served_eio else "refused" if not d.mounted else "intact"), what, ""
    # Not intact: fsck.
    r1, out1 = fsck(env, img, "-n")
    r2, out2 = fsck(env, img, "-p")
    if r2 not in (0, 1):
        return ("eio" if served_eio else "refused"), what, out2
    r3, out3 = fsck(env, img, "-n")
    if r3 != 0:
        return "fsck-not-clean", what, out1 + out2 + out3
    d = Daemon(env, img, mnt)
    if not d.mounted:
        d.umount()
        return "fsck-mount-refused", what, out2 + d.text()
    res = walk(mnt, model, lost_prefixes(out2))
    rc = d.umount()
    if rc in ("crash", "hang"):
        return rc, what, d.text()
    for k in ("wrong", "resurrected", "missing"):
        if res[k]:
            return k, what + " after fsck " + str(res[k][:5]), out2
    if res["eio"]:
        return "eio-after-fsck", what, out2
    return "repaired", what, ""


BAD = ("wrong", "missing", "resurrected", "crash", "hang", "refused-silently",
       "fsck-not-clean", "fsck-mount-refused", "eio-after-fsck")


def campaign(env):
    n = int(os.environ.get("TSLAB_DAMAGE_IMAGES", "300"))
    only = os.environ.get("TSLAB_DAMAGE_ONLY")
    seed = int(os.environ.get("TSLAB_DAMAGE_SEED", "11"))
    bases = [make_base(env, "base%d" % b, seed * 100 + b, crash=b % 2 == 1)
             for b in range(4)]
    mnt = env.mountpoint("dmg")
    counts, bad = {}, []
    t0 = time.time()
    for i in range(n):
        if only is not None and i != int(only):
            continue
        rng = random.Random("%d/%d" % (seed, i))
        base, model = bases[i % len(bases)]
        kind = KINDS[i % len(KINDS)]
        outcome, what, log = one_image(env, i, base, model, kind, rng, mnt)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome in BAD or only is not None:
            bad.append((i, outcome, what, log))
    print("campaign: %d images in %.0f s (seed %d)" % (sum(counts.values()),
                                                    time.time() - t0, seed))
    print("| outcome | images |\n|---|---|")
    for k in sorted(counts):
        print("| %s | %d |" % (k, counts[k]))
    for i, outcome, what, log in bad:
        print("image %d: %s: %s\n%s" % (i, outcome, what, log[-1500:] if outcome != "hang" else log[-12000:]))
    check(not [b for b in bad if b[1] in BAD],
          "%d images served wrong, missing or resurrected data, crashed or hung"
          % len([b for b in bad if b[1] in BAD]))


# ---- regression tests for the five defects ---------------------------------------------

def regressions(env):
    mnt = env.mountpoint("regmnt")
    img, model = make_base(env, "reg", 5, crash=False)
    lay = Layout(img)
    # A data page of epoch e1 (slot 1), its records.
    target = None
    for z in lay.written():
        if z < 4:
            continue
        for poff, used, ep in pages(img, lay, z):
            if ep >> 8 == 1:
                recs = records(img, lay, z, poff, used)
                if len(recs) > 2:
                    target = (z, poff, used, recs)
    check(target is not None, "no page of epoch 1 found")
    z, poff, used, recs = target

    # 1. damage in the middle of a zone of a crashed image is not a torn
    # tail: the mount refuses and says where.
    img1, _ = make_base(env, "reg1", 6, crash=True)
    clean1 = img1 + ".clean"
    shutil.copyfile(img1, clean1)
    lay1 = Layout(img1)
    zs = [z1 for z1 in lay1.written() if z1 >= 4 and len(pages(img1, lay1, z1)) > 2]
    check(zs, "no zone with three pages")
    z1 = zs[0]
    p1 = pages(img1, lay1, z1)[1]
    flip(img1, lay1.zoff(z1, p1[0] + 9), 0)  # the epoch field of a page header
    d = Daemon(env, img1, mnt)
    check(not d.mounted, "mount of a damaged image succeeded")
    d.umount()
    check("zone %d offset %d" % (z1, p1[0]) in d.text(),
          "damage not reported with its place:\n" + d.text())

    # 2. + 5. one bad record of a cleanly unmounted image: EIO on it, the
    # mount turns read-only (shown in /proc/mounts), its unmount writes no
    # checkpoint, the next mount still refuses or serves EIO, never less.
    img2 = os.path.join(env.dir, "reg2.img")
    shutil.copyfile(img, img2)
    live = find_record(img2, lay, [b for b in model.files.values()
                                   if 100 <= len(b) <= 4000])
    check(live, "no live file record found")
    flip(img2, lay.zoff(live[0], live[1] + live[2] - 1), 3)  # its last byte
    d = Daemon(env, img2, mnt)
    check(d.mounted, "clean image with one bad record did not mount:\n" + d.text())
    r = walk(mnt, model)
    check(not r["wrong"] and not r["resurrected"] and not r["missing"],
          "bad results: %s" % r)
    check(r["eio"] >= 1, "no EIO from the damaged record")
    ro = None
    for _ in range(3000):  # the remount runs in a helper thread (60 s)
        with open("/proc/mounts") as f:
            ro = [line.split()[3] for line in f if line.split()[1] == mnt]
        if ro and ro[0].startswith("ro"):
            break
        time.sleep(0.02)
    check(ro and ro[0].startswith("ro"), "mount not read-only: %s" % ro)
    try:
        open(os.path.join(mnt, "e1", "new"), "w").close()
        raise Fail("create succeeded after damage")
    except OSError as e:
        check(e.errno == errno.EROFS, "create: %s" % e)
    check(d.umount() == 0, "daemon did not exit cleanly")
    lay2 = Layout(img2)
    sbn = sb_newest(img2, lay2)
    sb = rd(img2, lay2.zoff(sbn[1], sbn[2]), 4096)
    check(struct.unpack_from("<Q", sb, 32)[0] & 1, "error mark not set")
    for _ in range(2):
        d = Daemon(env, img2, mnt)
        if d.mounted:
            with open("/proc/mounts") as f:
                opts = [line.split()[3] for line in f if line.split()[1] == mnt]
            check(opts[0].startswith("ro"), "marked image mounted rw")
            r = walk(mnt, model)
            check(not r["wrong"] and not r["resurrected"] and not r["missing"]
                  and r["eio"] >= 1, "remount: %s" % r)
        d.umount()
    # errors=continue: EIO, the mount stays rw; errors=unmount: it goes away.
    for policy in ("continue", "unmount"):
        imgp = os.path.join(env.dir, "reg2-%s.img" % policy)
        shutil.copyfile(img, imgp)
        flip(imgp, lay.zoff(live[0], live[1] + live[2] - 1), 3)
        d = Daemon(env, imgp, mnt, opts="errors=" + policy)
        check(d.mounted, "errors=%s: not mounted:\n%s" % (policy, d.text()))
        r = walk(mnt, model)
        check(not r["wrong"] and not r["resurrected"] and r["eio"] >= 1,
              "errors=%s: %s" % (policy, r))
        if policy == "continue":
            with open(os.path.join(mnt, "e1", "new"), "w") as f:
                f.write("x")
            with open("/proc/mounts") as f:
                opts = [line.split()[3] for line in f if line.split()[1] == mnt]
            check(opts[0].startswith("rw"), "errors=continue: %s" % opts)
        else:
            for _ in range(3000):
                if not is_mounted(mnt):
                    break
                time.sleep(0.02)
            check(not is_mounted(mnt), "errors=unmount: still mounted")
        check(d.umount() == 0, "errors=%s: daemon exit:\n%s" % (policy, d.text()))
        check("errors=%s" % policy in d.text(), "policy not logged:\n" + d.text())

    rc, out = fsck(env, img2, "-n")
    check(rc == 4, "fsck -n of a damaged image: %d\n%s" % (rc, out))
    rc, out = fsck(env, img2, "-p")
    check(rc == 1, "fsck -p: %d\n%s" % (rc, out))
    rc, out = fsck(env, img2, "-n")
    check(rc == 0, "second fsck: %d\n%s" % (rc, out))

    # 3. a damaged xattr value: EIO, no double free.
    img3 = os.path.join(env.dir, "reg3.img")
    shutil.copyfile(img, img3)
    hit = None
    for z3 in lay.written():
        for poff3, used3, ep3 in pages(img3, lay, z3) if z3 >= 4 else []:
            for roff3, ln3 in records(img3, lay, z3, poff3, used3):
                b = rd(img3, lay.zoff(z3, roff3), ln3)
                if b[4] == 1 and b[5] == 3 and ln3 > 60:  # OBJ, kind XATTR
                    hit = (z3, roff3, ln3)
    check(hit, "no xattr record found")
    flip(img3, lay.zoff(hit[0], hit[1] + hit[2] - 1), 0)
    d = Daemon(env, img3, mnt)
    check(d.mounted, "did not mount:\n" + d.text())
    eio = 0
    for rel in model.xattrs:
        try:
            os.getxattr(os.path.join(mnt, rel), "user.k")
        except OSError as e:
            check(e.errno in (errno.EIO, errno.ENOENT), "getxattr: %s" % e)
            eio += e.errno == errno.EIO
    check(eio >= 1, "no EIO from the damaged xattr")
    check(d.umount() == 0, "daemon crashed after a damaged xattr:\n" + d.text())

    # 4. a forged record claiming object slot 1,966,771,789: refused at once
    # (bounded by the geometry), no huge allocation.
    # (a crashed image: mount scans the zones instead of the checkpoint)
    img4 = os.path.join(env.dir, "reg4.img")
    shutil.copyfile(clean1, img4)
    z, p4 = zs[-1], pages(img4, lay1, zs[-1])[0]
    roff, ln = records(img4, lay1, z, p4[0], p4[1])[-1]
    rec_rewrite(img4, lay1, z, roff, ln,
                lambda b: struct.pack_into("<I", b, 12, 1966771789))
    rc, out = fsck(env, img4, "-n")
    check(rc == 4 and "zone %d offset %d" % (z, roff) in out,
          "fsck -n of a forged slot: %d\n%s" % (rc, out))
    d = Daemon(env, img4, mnt, opts="ro")
    check(not d.mounted and not d.hang, "forged slot mounted or hung")
    d.umount()
    check("zone %d offset %d" % (z, roff) in d.text(), "forged slot not reported")

    # 5b. an unknown read-only compatible bit: a clear message, mount ro.
    img5 = os.path.join(env.dir, "reg5.img")
    shutil.copyfile(img, img5)
    sb_rewrite(img5, Layout(img5), lambda b: struct.pack_into("<Q", b, 32, 0x4))
    d = Daemon(env, img5, mnt)
    check(d.mounted, "unknown ro_compat bit: not mounted:\n" + d.text())
    with open("/proc/mounts") as f:
        opts = [line.split()[3] for line in f if line.split()[1] == mnt]
    r = walk(mnt, model)
    d.umount()
    check(opts[0].startswith("ro"), "unknown ro_compat: mounted %s" % opts)
    check("unknown read-only compatible features 0x4" in d.text(),
          "no message:\n" + d.text())
    check(not r["wrong"] and not r["missing"] and r["ok"] == len(model.files),
          "unknown ro_compat: %s" % r)
    # mount.tslabfs runs fsck.tslabfs -p when fstab's pass number asks.
    img6 = os.path.join(env.dir, "reg6.img")
    shutil.copyfile(clean1, img6)
    lay6 = Layout(img6)
    z6 = zs[0]
    p6 = pages(img6, lay6, z6)[1]
    roff, ln = records(img6, lay6, z6, p6[0], p6[1])[-1]
    flip(img6, lay6.zoff(z6, roff + ln - 1), 1)  # a record: its epoch is known
    fstab = os.path.join(env.dir, "fstab")
    with open(fstab, "w") as f:
        f.write("# test\n%s %s tslabfs defaults 0 2\n" % (img6, mnt))
    helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                          "fs", "mount.tslabfs")
    envv = dict(os.environ, TSLAB_FSTAB=fstab,
                PATH=os.path.dirname(env.tslabfs) + ":" +
                os.path.dirname(env.fsck) + ":" + os.environ["PATH"])
    r = subprocess.run([helper, img6, mnt], env=envv, capture_output=True, text=True,
                       timeout=HANG_S)
    try:
        check(r.returncode == 0 and is_mounted(mnt),
              "mount.tslabfs with pass 2: %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
        check("repaired" in r.stdout, "fsck did not run:\n" + r.stdout + r.stderr)
    finally:
        # mount.tslabfs started the daemon: it is not in LIVE, so nothing
        # else would take this mount down
        umount_retry(mnt)
        for _ in range(3000):
            if not is_mounted(mnt):
                break
            time.sleep(0.02)
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", mnt], check=False)
    print("regressions: PASS")


def main(env):
    env.fsck = os.path.join(os.path.dirname(env.mkfs_bin), "fsck.tslabfs")
    if not os.environ.get("TSLAB_DAMAGE_ONLY") and not os.environ.get("TSLAB_DAMAGE_NO_FSCK"):
        regressions(env)
    campaign(env)


if __name__ == "__main__":
    run(main)
