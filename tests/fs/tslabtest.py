# SPDX-License-Identifier: MIT
"""Shared helpers for the mounted tslabfs tests.

Every test: formats an image with mkfs.tslabfs, mounts it with a real
`tslabfs -f` daemon in the background and always unmounts (atexit and on
SIGTERM/SIGINT), even when the test fails. Exits 77 (skipped) only when
/dev/fuse is missing or the test does not run as root.

TSLAB_TRANSPORT=io_uring (suite integration-uring) or =dev (suite
integration) forces the daemon's transport (-o io_uring / -o noio_uring)
and every mount checks from the daemon's log line that this transport is
the one in use, so a silent fallback to /dev/fuse fails the test.

Usage from a test script:
    t = Env(sys.argv)          # argv: script TSLABFS MKFS
    img = t.mkfs(size="256M", zone="8M")
    m = t.mount(img)           # Mount object: m.path, m.pid, m.log
    ...
    m.umount()
"""
import atexit
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77

# TSLAB_TRANSPORT value -> the daemon option and the name it logs
TRANSPORT_OPT = {"io_uring": "io_uring", "dev": "noio_uring"}
TRANSPORT_NAME = {"io_uring": "io_uring", "dev": "/dev/fuse"}
URING_PARAM = "/sys/module/fuse/parameters/enable_uring"


def skip(msg):
    print("SKIP:", msg)
    sys.exit(SKIP)


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def expect_errno(err, fn, *args, **kw):
    """fn(*args) must fail with OSError errno ERR."""
    try:
        fn(*args, **kw)
    except OSError as e:
        if e.errno != err:
            raise Fail("%s%r: errno %s, expected %s" % (
                fn.__name__, args, errno.errorcode.get(e.errno, e.errno),
                errno.errorcode[err]))
        return
    raise Fail("%s%r: succeeded, expected %s" % (fn.__name__, args,
                                                errno.errorcode[err]))


def content(name, ver, size):
    """Deterministic file content whose header names what it is."""
    head = ("%s:%d:%d\n" % (name, ver, size)).encode()
    if size <= len(head):
        return head[:size]
    r = random.Random("%s/%d" % (name, ver))
    return head + r.randbytes(size - len(head))


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                return True
    return False


class Mount:
    def __init__(self, env, img, path, opts, debug):
        self.env = env
        self.img = img
        self.path = path
        self.log = os.path.join(env.dir, "tslabfs-%d.log" % env.nmounts)
        env.nmounts += 1
        args = [env.tslabfs, "-f"]
        if debug:
            args.append("-d")
        if env.transport:
            opts = TRANSPORT_OPT[env.transport] + ("," + opts if opts else "")
        if opts:
            args += ["-o", opts]
        args += [img, path]
        self.logf = open(self.log, "w")
        # TSLAB_CHECK_RESETS: the daemon checks every zone reset against
        # every record location and logs "BUG:" instead of destroying a
        # live record (slab/resetcheck.c); run() fails on such a line.
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, TSLAB_CHECK_RESETS="1"))
        self.pid = self.proc.pid
        env.mounts.append(self)
        deadline = time.time() + 60
        while not is_mounted(path):
            if self.proc.poll() is not None:
                raise Fail("tslabfs exited with %d before mounting:\n%s" %
                           (self.proc.returncode, self.read_log()))
            if time.time() > deadline:
                raise Fail("tslabfs did not mount within 60 s:\n" + self.read_log())
            time.sleep(0.02)
        if env.transport:
            self.check_transport(env.transport, deadline)

    def check_transport(self, want, deadline):
        """The daemon logs its transport once the kernel took the INIT
        reply (right after mounting)."""
        line = None
        while line is None:
            with open(self.log, errors="replace") as f:
                for ln in f:
                    if "tslabfs: transport: " in ln:
                        line = ln.strip()
                        break
            if line is None:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise Fail("tslabfs logged no transport line:\n" + self.read_log())
                time.sleep(0.02)
        check(line.startswith("tslabfs: transport: " + TRANSPORT_NAME[want]),
              "transport %s wanted, the daemon says: %s" % (want, line))

    def p(self, *names):
        return os.path.join(self.path, *names)

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def umount(self, timeout=300):
        """Clean unmount; the daemon must flush and exit 0."""
        # umount fails with EBUSY while any process, the daemon's own
        # no_open probe (fs/threads.c) included, briefly has a file open:
        # try again for a while before giving up.
        for _ in range(60):
            if self.proc.poll() is not None or not is_mounted(self.path):
                break
            if subprocess.run(["umount", self.path], check=False,
                              stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.5)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Fail("tslabfs did not exit within %d s after umount" % timeout)
        finally:
            self.detach()
        if rc != 0:
            raise Fail("tslabfs exited with %d:\n%s" % (rc, self.read_log()))

    def kill(self):
        """SIGKILL the daemon (a crash) and detach the dead mount."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.detach()

    def detach(self):
        if is_mounted(self.path):
            subprocess.run(["umount", "-l", self.path], check=False,
                           stderr=subprocess.DEVNULL)
        if self in self.env.mounts:
            self.env.mounts.remove(self)
        self.logf.close()


class Env:
    def __init__(self, argv):
        if len(argv) < 3:
            print("usage: %s TSLABFS MKFS" % argv[0])
            sys.exit(2)
        self.tslabfs = os.path.abspath(argv[1])
        self.mkfs_bin = os.path.abspath(argv[2])
        self.args = argv[3:]
        if not os.path.exists("/dev/fuse"):
            skip("/dev/fuse is missing")
        if os.geteuid() != 0:
            skip("needs root (mounts a FUSE filesystem)")
        self.transport = os.environ.get("TSLAB_TRANSPORT") or None
        if self.transport not in (None, *TRANSPORT_OPT):
            print("TSLAB_TRANSPORT=%s: must be io_uring or dev" % self.transport)
            sys.exit(2)
        if self.transport == "io_uring":
            if not os.path.exists(URING_PARAM):
                skip("the kernel has no FUSE over io_uring (%s)" % URING_PARAM)
            # Only daemons that ask for it at INIT are affected.
            with open(URING_PARAM, "w") as f:
                f.write("1")
        base = os.environ.get("TSLAB_TEST_DIR", "/var/tmp")
        self.dir = tempfile.mkdtemp(prefix="tslabfs-test-", dir=base)
        self.mounts = []
        self.nmounts = 0
        self.keep = bool(os.environ.get("TSLAB_KEEP"))
        atexit.register(self.cleanup)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, self._on_signal)

    def _on_signal(self, sig, frame):
        self.cleanup()
        sys.exit(128 + sig)

    def mkfs(self, name="img", size="256M", zone="8M", extra=()):
        img = os.path.join(self.dir, name)
        r = subprocess.run([self.mkfs_bin, "-q", "-f", "-s", size, "-z", zone, *extra, img],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Fail("mkfs.tslabfs failed: %s%s" % (r.stdout, r.stderr))
        return img

    def mountpoint(self, name="mnt"):
        p = os.path.join(self.dir, name)
        os.makedirs(p, exist_ok=True)
        return p

    def mount(self, img, path=None, opts=None, debug=False):
        return Mount(self, img, path or self.mountpoint(), opts, debug)

    def bug_lines(self):
        """Lines with "BUG:" in the logs of every daemon this test started."""
        out = []
        for i in range(self.nmounts):
            try:
                with open(os.path.join(self.dir, "tslabfs-%d.log" % i), errors="replace") as f:
                    out += ["tslabfs-%d.log: %s" % (i, ln.strip()) for ln in f if "BUG:" in ln]
            except OSError:
                pass
        return out

    def cleanup(self):
        for m in list(self.mounts):
            try:
                if m.proc.poll() is None:
                    subprocess.run(["umount", m.path], check=False,
                                   stderr=subprocess.DEVNULL)
                    try:
                        m.proc.wait(60)
                    except subprocess.TimeoutExpired:
                        m.proc.kill()
                        m.proc.wait()
                m.detach()
            except Exception as e:  # keep cleaning the others
                print("cleanup:", e)
        self.mounts = []
        if os.path.isdir(self.dir) and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def run(main):
    """Run main(env); print PASS/FAIL; exit 0/1. Whatever happens (a Fail,
    any other exception, SIGTERM from a test timeout), every mount the test
    made is taken down."""
    env = Env(sys.argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ok = False
    try:
        main(env)
        bugs = env.bug_lines()
        if bugs:
            raise Fail("the daemon reported an internal error:\n" + "\n".join(bugs[:10]))
        ok = True
    except Fail as e:
        print("FAIL:", e)
        for m in env.mounts:
            print("--- daemon log (%s) ---" % m.log)
            print(m.read_log())
    finally:
        env.cleanup()
    if ok:
        print("PASS")
    sys.exit(0 if ok else 1)
