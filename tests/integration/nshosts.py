"""Hosts made of network namespaces, for the fleet tests: each host has its own address
(10.231.0.x, which exists only inside these namespaces), its own sshd (a key made here),
its own memcached bound to its address and its own mount namespace (sshd runs under
`unshare --mount --propagation private`, so what one host mounts no other host sees, as
on two machines). Loop images live in the test's temporary directory, which every host
sees, as every host of an EBS multi-attach sees the one volume.

    net namespace  P-net: bridge br0, one veth per host
    control host   P-ctl: 10.231.0.2 (ansible-playbook runs here, as on an operator's box)
    hosts          P-NAME: 10.231.0.(10 + i), sshd on :22, memcached on :11211

Nothing is added to the machine's own network namespace: traffic stays between these
namespaces. Everything started here is stopped by close(), also after a failure.
"""
import atexit
import ctypes
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import time

SUBNET = "10.231.0"
CTL_ADDR = SUBNET + ".2"
MEMCACHED_PORT = 11211
SSHD = "/usr/sbin/sshd"
REGISTRY = "/run/mcwarm-test-hosts"  # one file per live Fleet: its owner's pid -> its dir
CLONE_NEWNET = 0x40000000


def skip_reason():
    """Why this machine cannot build such hosts, or None."""
    if os.geteuid() != 0:
        return "network namespaces, loop devices and mounts need root"
    for tool in ("ip", "unshare", "losetup", "ssh", "ssh-keygen", "ansible-playbook",
                 "mkfs.ext4", "memcached"):
        if not shutil.which(tool):
            return "%s is not installed (scripts/setup.sh installs it)" % tool
    if not os.path.exists(SSHD):
        return "sshd is not installed (openssh-server; scripts/setup.sh installs it)"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control (the loop module is not loaded)"
    name = "mcwmh-probe-%d" % os.getpid()
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if p.returncode != 0:
        return "cannot make a network namespace: " + p.stderr.strip()
    subprocess.run(["ip", "netns", "del", name])
    return None


def run(*argv, check=True):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(map(str, argv)), p.returncode,
                                                 p.stderr.strip()))
    return p


_libc = ctypes.CDLL(None, use_errno=True)


class in_netns:
    """`with in_netns(name):` sockets made inside belong to that network namespace (the
    calling thread switches, then switches back)."""

    def __init__(self, name):
        self.path = "/run/netns/" + name

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + self.path)
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        try:
            if _libc.setns(self.home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")
        finally:
            os.close(self.home)


class Host:
    def __init__(self, fleet, name, index):
        self.fleet = fleet
        self.name = name
        self.ns = "%s-%s" % (fleet.prefix, name)
        self.addr = "%s.%d" % (SUBNET, 10 + index)
        self.dir = os.path.join(fleet.dir, "hosts", name)
        self.sshd = None
        self.memcached = None

    @property
    def mc_addr(self):
        return "%s:%d" % (self.addr, MEMCACHED_PORT)

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.ns] + [str(a) for a in argv]

    def start_sshd(self):
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write("ListenAddress %s:22\n" % self.addr +
                    "HostKey %s\n" % self.fleet.host_key +
                    "AuthorizedKeysFile %s\n" % self.fleet.client_key_pub +
                    "PidFile %s\n" % os.path.join(self.dir, "sshd.pid") +
                    "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                    "MaxStartups 200\nMaxSessions 200\nLogLevel ERROR\n"
                    "Subsystem sftp internal-sftp\n")
        self.sshd_log = open(os.path.join(self.dir, "sshd.log"), "ab")
        self.sshd = subprocess.Popen(self.exec_argv(
            ["unshare", "--mount", "--propagation", "private", SSHD, "-D", "-e", "-f", conf]),
            stdout=self.sshd_log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_memcached(self, memory_mb=64):
        """A new, empty memcached on ADDR:11211 (the old one killed)."""
        self.stop_memcached()
        self.memcached = subprocess.Popen(self.exec_argv(
            ["memcached", "-l", self.addr, "-p", MEMCACHED_PORT, "-U", "0", "-m", memory_mb,
             "-t", "1", "-u", "root"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.wait_port(MEMCACHED_PORT, self.memcached, "memcached")

    def stop_memcached(self):
        if self.memcached is not None:
            self.memcached.kill()
            self.memcached.wait()
            self.memcached = None

    def wait_port(self, port, proc, what, timeout_s=10):
        deadline = time.time() + timeout_s
        while True:
            try:
                with self.fleet.ctl_netns():
                    s = socket.create_connection((self.addr, port), timeout=1)
                s.close()
                return
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("%s did not start on %s:%d" % (what, self.addr, port))
                time.sleep(0.05)

    def connect(self, port=MEMCACHED_PORT):
        """A TCP connection from the control host to this host."""
        with self.fleet.ctl_netns():
            return socket.create_connection((self.addr, port), timeout=30)

    def sshd_pid(self):
        """sshd's own pid (the one in the host's mount namespace)."""
        with open(os.path.join(self.dir, "sshd.pid")) as f:
            return int(f.read())

    def mounts(self):
        """Mount points on this host, as its own mount namespace sees them."""
        with open("/proc/%d/mountinfo" % self.sshd_pid()) as f:
            return [line.split()[4] for line in f]

    def pids(self):
        """Every process in this host's network namespace."""
        p = run("ip", "netns", "pids", self.ns, check=False)
        return [int(x) for x in p.stdout.split()]

    def stray_pids(self):
        """Processes on this host other than its sshd listener and its memcached (a
        session, a dumper, a populator, an async job left running)."""
        keep = set()
        try:
            keep.add(self.sshd_pid())
        except (OSError, ValueError):
            pass
        for proc in (self.sshd, self.memcached):
            if proc is not None:
                keep.add(proc.pid)
        if self.memcached is not None:  # ip netns exec execs memcached: same pid
            keep.add(self.memcached.pid)
        return [p for p in self.pids() if p not in keep and not is_unshare(p)]


def is_unshare(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip() == "unshare"
    except OSError:
        return False


class Fleet:
    """Hosts named by `names`, a control host, and the bridge between them."""

    def __init__(self, directory, names):
        reap_stale()
        self.dir = directory
        self.prefix = "mcwmh%d" % os.getpid()
        self.net = self.prefix + "-net"
        self.ctl = self.prefix + "-ctl"
        self.hosts = {}
        self.namespaces = []
        os.makedirs(REGISTRY, exist_ok=True)
        with open(os.path.join(REGISTRY, str(os.getpid())), "w") as f:
            f.write(directory)
        atexit.register(self.close)  # also when the test run is interrupted
        try:
            self._keys()
            self._network(names)
            for h in self.hosts.values():
                h.start_sshd()
            for h in self.hosts.values():
                h.wait_port(22, h.sshd, "sshd")
        except BaseException:
            self.close()
            raise

    def _keys(self):
        d = os.path.join(self.dir, "ssh")
        os.makedirs(d, exist_ok=True)
        self.host_key = os.path.join(d, "host_key")
        self.client_key = os.path.join(d, "id_ed25519")
        self.client_key_pub = self.client_key + ".pub"
        for k in (self.host_key, self.client_key):
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mcwarm-test", "-f", k)
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory

    def _add_ns(self, name):
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def _attach(self, ns, veth, addr):
        run("ip", "-n", self.net, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
            "netns", ns)
        run("ip", "-n", self.net, "link", "set", veth, "master", "br0", "up")
        run("ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")

    def _network(self, names):
        self._add_ns(self.net)
        run("ip", "-n", self.net, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.net, "link", "set", "br0", "up")
        self._add_ns(self.ctl)
        self._attach(self.ctl, "vctl", CTL_ADDR)
        for i, name in enumerate(names):
            h = Host(self, name, i + 1)
            self._add_ns(h.ns)
            self._attach(h.ns, "v%d" % (i + 1), h.addr)
            self.hosts[name] = h

    def ctl_netns(self):
        return in_netns(self.ctl)

    def ctl_argv(self, argv):
        """argv run on the control host."""
        return ["ip", "netns", "exec", self.ctl] + [str(a) for a in argv]

    def inventory(self, path, extra_vars=None):
        """An Ansible inventory (INI) of every host, reached over SSH with the test key."""
        with open(path, "w") as f:
            f.write("[mcwarm_hosts]\n")
            for h in self.hosts.values():
                f.write("%s ansible_host=%s\n" % (h.name, h.addr))
            f.write("\n[mcwarm_hosts:vars]\nansible_user=root\n"
                    "ansible_ssh_private_key_file=%s\n" % self.client_key +
                    "ansible_python_interpreter=/usr/bin/python3\n")
            for k, v in (extra_vars or {}).items():
                f.write("%s=%s\n" % (k, v))
        return path

    def ansible_env(self):
        """Environment of ansible-playbook on the control host: no state outside the
        test's directory, no host key prompts, SSH masters it can find again."""
        d = os.path.join(self.dir, "ansible")
        for sub in ("home", "local", "cp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        env = dict(os.environ)
        env.update(ANSIBLE_HOME=os.path.join(d, "home"),
                   ANSIBLE_LOCAL_TEMP=os.path.join(d, "local"),
                   ANSIBLE_REMOTE_TEMP=os.path.join(d, "remote"),
                   ANSIBLE_ASYNC_DIR=os.path.join(d, "async"),
                   ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(d, "cp"),
                   ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=30s "
                                    "-o UserKnownHostsFile=/dev/null "
                                    "-o StrictHostKeyChecking=no -o LogLevel=ERROR",
                   ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_RETRY_FILES_ENABLED="False",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_PIPELINING="True")
        return env

    def kill_strays(self):
        """Ends every process on the hosts (and the control host) but the sshd listeners
        and memcached servers: what a test left running."""
        for h in list(self.hosts.values()):
            for pid in h.stray_pids():
                kill(pid)
        for pid in [int(x) for x in run("ip", "netns", "pids", self.ctl,
                                         check=False).stdout.split()]:
            kill(pid)

    def close(self):
        """Stops everything: every process in the namespaces (their mounts go with their
        mount namespaces), the loop devices on images under the test directory, the
        namespaces."""
        for ns in self.namespaces:
            for _ in range(50):
                pids = [int(x) for x in run("ip", "netns", "pids", ns,
                                            check=False).stdout.split()]
                if not pids:
                    break
                for pid in pids:
                    kill(pid)
                time.sleep(0.1)
        for h in self.hosts.values():
            for proc in (h.sshd, h.memcached):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                if proc is not None:
                    proc.wait()
            if h.sshd is not None:
                h.sshd_log.close()
        detach_loops_under(self.dir)
        for ns in reversed(self.namespaces):
            run("ip", "netns", "del", ns, check=False)
        self.namespaces = []
        try:
            os.unlink(os.path.join(REGISTRY, str(os.getpid())))
        except FileNotFoundError:
            pass


def reap_stale():
    """What an earlier run killed outright (SIGKILL, a CI timeout) left behind: the
    processes in its namespaces, its loop devices, the namespaces, its directory."""
    owners = set()
    for name in run("ip", "netns", "list", check=False).stdout.split():
        m = re.match(r"mcwmh(\d+)-", name)
        if m and not os.path.exists("/proc/" + m.group(1)):
            owners.add(m.group(1))
            for pid in run("ip", "netns", "pids", name, check=False).stdout.split():
                kill(int(pid))
    for f in glob.glob(os.path.join(REGISTRY, "*")):
        if not os.path.exists("/proc/" + os.path.basename(f)):
            owners.add(os.path.basename(f))
    for owner in owners:
        reg = os.path.join(REGISTRY, owner)
        if os.path.exists(reg):
            with open(reg) as f:
                directory = f.read().strip()
            time.sleep(0.5)  # the killed processes' mount namespaces go away
            detach_loops_under(directory)
            shutil.rmtree(directory, ignore_errors=True)
            os.unlink(reg)
        for name in run("ip", "netns", "list", check=False).stdout.split():
            if name.startswith("mcwmh%s-" % owner):
                run("ip", "netns", "del", name, check=False)


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def loops_under(directory):
    """Loop devices whose backing file is under directory."""
    real = os.path.realpath(directory) + "/"
    found = []
    for bf in glob.glob("/sys/block/loop*/loop/backing_file"):
        with open(bf) as f:
            if f.read().strip().startswith(real):
                found.append("/dev/" + bf.split("/")[3])
    return found


def detach_loops_under(directory):
    for _ in range(20):  # a mount namespace being torn down still holds its devices a while
        devs = loops_under(directory)
        if not devs:
            return
        for dev in devs:
            run("losetup", "-d", dev, check=False)
        time.sleep(0.2)
